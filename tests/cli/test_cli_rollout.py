"""Feedback to retraining to promotion through the CLI: `train --with-feedback`, `models promote`, `drift`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_cli import Run, write_corpus

from labelwise.config import Settings
from labelwise.monitoring.predictions import text_sha256, utcnow
from labelwise.storage.db import Database
from labelwise.storage.monitoring import FeedbackEntry, FeedbackRepository


def _ok(result: tuple[int, str, str]) -> Any:
    code, out, err = result
    assert code == 0, err
    return json.loads(out)


def test_feedback_retrain_compare_and_promote(run: Run, tmp_path: Path, database_url: str) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus)
    first = _ok(run("train", str(corpus), "--name", "topics", "--json"))
    db = Database(Settings(database_url=database_url).resolved_database_url())
    try:
        repo = FeedbackRepository(db)
        texts = [("the coach praised the goalkeeper", "sports"), ("mortgage rates rose again", "finance")]
        for text, label in texts:
            repo.add(FeedbackEntry(utcnow(), None, None, "topics", text_sha256(text), text, [label]))
        repo.add(FeedbackEntry(utcnow(), None, None, "topics", "0" * 64, None, ["sports"]))  # hash only: unusable
    finally:
        db.dispose()

    second = _ok(run("train", "--name", "topics", "--with-feedback", "--json"))
    assert second["version"] != first["version"]
    report = json.loads((Path(second["report"]).parent / "report.json").read_text())
    assert report["feedback_rows"] == 2
    comparison = report["comparison"]
    assert comparison["production"]["version"] == first["version"]
    assert comparison["feedback_rows"] == 2
    for side in ("production", "candidate"):
        assert comparison[side]["held_out"]["n"] == comparison["production"]["held_out"]["n"] > 0
        assert comparison[side]["feedback"]["n"] == 2
    # Trained on the corrections, the candidate gets them right.
    assert comparison["candidate"]["feedback"]["accuracy"] == 1.0

    promoted = _ok(run("models", "promote", "topics", second["version"], "--json"))
    assert promoted["production"] == second["version"]
    assert promoted["comparison"]["production"]["version"] == first["version"]
    shown = _ok(run("models", "show", "topics@production", "--json"))
    assert [v["version"] for v in shown["versions"]] == [second["version"]]

    drift = _ok(run("drift", "topics", "--window", "1h", "--json"))
    assert (drift["version"], drift["predictions"], drift["status"]) == (second["version"], 0, "no_data")
    assert abs(sum(drift["baseline_distribution"].values()) - 1.0) < 1e-9
    code, _, err = run("drift", "topics", "--window", "soon")
    assert code == 1
    assert "window" in err
