"""The drift window's aggregate, computed by the database, against the same figures counted row by row."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from labelwise.monitoring.drift import LOW_CONFIDENCE
from labelwise.storage.db import Database
from labelwise.storage.monitoring import NO_DECISION, LoggedPrediction, PredictionLogRepository


def _rows(now: datetime) -> list[LoggedPrediction]:
    draw = random.Random(7)
    labels = ["billing", "delivery", "refund", "naïve \u00e9t\u00e9", 'quote " and \\ slash']
    rows = []
    for i in range(400):
        model = "intents" if i % 5 else "other"
        version = "1.0.0" if i % 3 else "2.0.0"
        predicted = [] if i % 17 == 0 else draw.sample(labels, 1 + (i % 7 == 0))  # some empty, some two labels
        confidence = LOW_CONFIDENCE if i % 11 == 0 else draw.random()  # the threshold itself counts as low
        at = now - timedelta(minutes=draw.randrange(0, 120))
        scores = [(label, confidence) for label in predicted]
        rows.append(
            LoggedPrediction(
                f"r{i}", 0, at, None, model, version, "0" * 64, 10, scores, predicted, confidence, 0.0, None
            )
        )
    return rows


@pytest.mark.parametrize("version", ["1.0.0", None])
def test_window_summary_equals_counting_row_by_row(database: Database, version: str | None) -> None:
    now = datetime.now(UTC)
    rows = _rows(now)
    repo = PredictionLogRepository(database)
    repo.add(rows)
    since = now - timedelta(hours=1)
    chosen = [
        r for r in rows if r.model == "intents" and r.created_at >= since and (version is None or r.version == version)
    ]
    summary = repo.window_summary("intents", since, version, low_confidence=LOW_CONFIDENCE)
    assert summary.predictions == len(chosen) > 50
    assert summary.top_labels == dict(Counter(r.predicted[0] if r.predicted else NO_DECISION for r in chosen))
    assert summary.confidence_sum == pytest.approx(sum(r.confidence for r in chosen))
    assert summary.low_confidence == sum(r.confidence <= LOW_CONFIDENCE for r in chosen)
    empty = repo.window_summary("missing", since, None, low_confidence=LOW_CONFIDENCE)
    assert (empty.predictions, empty.top_labels, empty.confidence_sum, empty.low_confidence) == (0, {}, 0.0, 0)
