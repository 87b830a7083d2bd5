"""A small real linear model on TREC questions, trained once per test session, with its validation baseline."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labelwise.domain import LabeledTexts
from labelwise.engines.linear import LinearEngine
from labelwise.monitoring.drift import baseline_from_split
from labelwise.training.pipeline import evaluate_engine


def read_jsonl(path: Path, limit: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:limit]]


@functools.cache
def trec_model(shared_data: Path) -> tuple[LinearEngine, dict[str, Any]]:
    """The engine (trained on the first 1,500 questions) and its metrics with a `baseline` from the next 300, which
    it has not seen (the engine refits on its validation split, so that split is no baseline)."""
    rows = read_jsonl(shared_data / "trec" / "train.jsonl", 1800)

    def split(part: list[dict[str, Any]]) -> LabeledTexts:
        return LabeledTexts(texts=[r["text"] for r in part], labels=[(r["label"],) for r in part])

    engine = LinearEngine(c_grid=(1.0,)).fit(split(rows[:1200]), split(rows[1200:1500]))
    metrics = {"baseline": asdict(baseline_from_split(evaluate_engine(engine, split(rows[1500:]))))}
    return engine, metrics
