"""Safe rollout: train on feedback too, and compare a candidate version with the one in production.

The comparison scores both versions on the candidate's held-out split (test, else validation: data neither was
trained on, as long as production was trained on the same file) and on the corrections stored as feedback, and
lands in the candidate's report under `comparison`, so whoever promotes it sees both side by side.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from labelwise.data import Dataset
from labelwise.domain import LabeledTexts
from labelwise.engines.base import Engine
from labelwise.errors import NotFound
from labelwise.registry.store import ModelStore
from labelwise.training.pipeline import evaluate_engine, headline

logger = logging.getLogger(__name__)

FeedbackRows = Sequence[tuple[str, tuple[str, ...]]]


def add_feedback(dataset: Dataset, rows: FeedbackRows) -> tuple[Dataset, int]:
    """`dataset` with the feedback rows added to its training split (rows naming unknown labels are left out,
    since the report's label set comes from the data); the new dataset and how many rows were added."""
    known = set(dataset.labels)
    kept = [(text, labels) for text, labels in rows if labels and set(labels) <= known]
    if len(kept) < len(rows):
        logger.warning("feedback with unknown labels left out", extra={"rows": len(rows) - len(kept)})
    train = LabeledTexts(
        texts=[*dataset.train.texts, *(t for t, _ in kept)], labels=[*dataset.train.labels, *(ls for _, ls in kept)]
    )
    return dataclasses.replace(dataset, train=train), len(kept)


def _scores(engine: Engine, data: LabeledTexts) -> dict[str, Any] | None:
    if not len(data.texts):
        return None
    return headline(evaluate_engine(engine, data))


def compare_with_production(
    store: ModelStore, name: str, candidate: Engine, dataset: Dataset, feedback: FeedbackRows
) -> dict[str, Any] | None:
    """Headline metrics of the candidate and of `name@production` on held-out data and on feedback; None when
    there is no production version yet."""
    try:
        record = store.resolve(f"{name}@production")
    except NotFound:
        return None
    production = store.load(record)
    held_out = dataset.test if dataset.test is not None and len(dataset.test) else dataset.validation
    known = set(dataset.labels) & set(production.classes_)
    rows = [(t, ls) for t, ls in feedback if ls and set(ls) <= known]
    corrections = LabeledTexts(texts=[t for t, _ in rows], labels=[ls for _, ls in rows])
    return {
        "split": "test" if held_out is dataset.test else "validation",
        "production": {
            "version": record.version,
            "held_out": _scores(production, held_out),
            "feedback": _scores(production, corrections),
        },
        "candidate": {"held_out": _scores(candidate, held_out), "feedback": _scores(candidate, corrections)},
        "feedback_rows": len(rows),
    }
