"""Fit an engine on a dataset, evaluate it on validation and test, and assemble the training report."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labelwise.data import Dataset
from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.base import Engine, ProgressCallback, TextEncoder
from labelwise.engines.factory import create_engine
from labelwise.training.metrics import evaluate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A fitted engine and its report (JSON-able; the shape `training.report.write_report` renders)."""

    engine: Engine
    report: dict[str, Any]

    @property
    def headline(self) -> dict[str, Any]:
        """The few metrics shown in listings: from the test split when there is one, else validation."""
        return headline(self.report.get("test") or self.report["validation"])


def evaluate_engine(engine: Engine, data: LabeledTexts) -> dict[str, Any]:
    """All metrics of `engine` on labeled `data`."""
    proba = engine.predict_proba(data.texts)
    return evaluate(data.labels, proba, engine.classes_, engine.task_, engine.thresholds_)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Accuracy (or micro-F1 for multi-label), macro-F1 and calibration error, rounded for display."""
    out: dict[str, Any] = {"n": metrics["n"], "macro_f1": round(metrics["macro"]["f1"], 4)}
    if metrics["task"] == TaskType.SINGLE_LABEL.value:
        out["accuracy"] = round(metrics["accuracy"], 4)
    else:
        out["micro_f1"] = round(metrics["micro"]["f1"], 4)
        out["subset_accuracy"] = round(metrics["subset_accuracy"], 4)
    out["ece"] = round(metrics["ece"], 4)
    return out


def fit_and_evaluate(
    dataset: Dataset,
    engine_name: str = "linear",
    params: dict[str, Any] | None = None,
    *,
    progress: ProgressCallback | None = None,
    encoder: TextEncoder | None = None,
) -> TrainResult:
    """Train `engine_name` on the dataset's train split and evaluate on its validation and test splits
    (`encoder`: the sentence encoder, for engines that need one)."""
    engine = create_engine(engine_name, encoder=encoder, **(params or {}))
    started = time.perf_counter()
    engine.fit(
        dataset.train,
        dataset.validation,
        multi_label=dataset.task is TaskType.MULTI_LABEL,
        progress=progress,
    )
    seconds = time.perf_counter() - started
    if progress is not None:
        progress("evaluating", 1.0)
    report: dict[str, Any] = {
        "engine": engine.name,
        "task": engine.task_.value,
        "labels": list(engine.classes_),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 3),
        "params": engine.get_params(),
        "data": dataset.summary(),
        "calibration": calibration_summary(engine.get_params()),
        "validation": evaluate_engine(engine, dataset.validation),
        "test": evaluate_engine(engine, dataset.test) if dataset.test is not None and len(dataset.test) else None,
    }
    logger.info(
        "model trained",
        extra={"engine": engine.name, "seconds": round(seconds, 3), "train_rows": len(dataset.train)},
    )
    return TrainResult(engine, report)


def calibration_summary(params: dict[str, Any]) -> dict[str, Any]:
    """The calibration facts an engine reports in its params (method, validation ECE ...), for the report."""
    found = params.get("calibration")
    if isinstance(found, dict):
        return found
    return {key: value for key, value in params.items() if key.startswith("calibration")}
