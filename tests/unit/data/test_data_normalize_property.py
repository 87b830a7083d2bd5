"""Property tests: normalization is idempotent and de-duplication keeps one row per normalized text."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from labelwise.data import normalize_text, read_labeled

texts = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() != "")
# Variants a user would consider the same text: other case, extra outer and inner whitespace.
variants = st.sampled_from([str.upper, str.lower, lambda t: f"  {t}\t", lambda t: t.replace(" ", "  \n ")])


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@given(st.text(), variants)
def test_whitespace_and_case_variants_normalize_alike(text: str, variant: object) -> None:
    changed = variant(text)  # type: ignore[operator]
    # Case mapping is not always undone by case folding (e.g. 'ǅ'); only compare when folding agrees.
    if changed in (text.upper(), text.lower()) and normalize_text(changed.casefold()) != normalize_text(
        text.casefold()
    ):
        return
    assert normalize_text(changed) == normalize_text(text)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(texts, variants), min_size=1, max_size=12))
def test_dedupe_keeps_one_row_per_normalized_text(pairs: list[tuple[str, object]]) -> None:
    rows = []
    for text, variant in pairs:
        rows.append(text)
        rows.append(variant(text))  # type: ignore[operator]
    rows = [row for row in rows if row.strip()]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.jsonl"
        path.write_text("".join(json.dumps({"text": r, "label": "x"}) + "\n" for r in rows), encoding="utf-8")
        data, stats, _ = read_labeled(path, min_examples=1)
    keys = [normalize_text(r) for r in rows]
    assert [normalize_text(t) for t in data.texts] == list(dict.fromkeys(keys))
    assert data.texts == [rows[keys.index(normalize_text(t))] for t in data.texts]
    assert stats.rows_read == len(rows) == stats.rows_kept + stats.exact_duplicates + stats.normalized_duplicates
    assert stats.exact_duplicates == len(rows) - len(set(rows))
