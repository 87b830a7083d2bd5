"""Use cases: train, classify, keys ... Called by the API and the CLI; they use engines and storage."""
