"""Fit an engine on a dataset, evaluate it on validation and test, and assemble the training report."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.data import Dataset
from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines import abstain
from labelwise.engines.base import Engine, FloatArray, ProgressCallback, TextEncoder
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


def evaluate_engine(engine: Engine, data: LabeledTexts, proba: FloatArray | None = None) -> dict[str, Any]:
    """All metrics of `engine` on labeled `data` (`proba`: its scores, when already computed)."""
    if proba is None:
        proba = engine.predict_proba(data.texts)
    return evaluate(data.labels, proba, engine.classes_, engine.task_, engine.thresholds_)


def tune_abstain(
    engine: Engine, validation: LabeledTexts, proba: FloatArray, test: LabeledTexts | None, target_precision: float
) -> dict[str, Any] | None:
    """The abstain rule tuned on held-out validation scores (single-label models only), with how it does on
    `test`. An engine that refitted on the validation rows supplies their scores from before (`heldout_`).

    Multi-label models get none: their decision is a threshold per label, already tuned for each label.
    """
    if engine.task_ is not TaskType.SINGLE_LABEL:
        return None
    if engine.heldout_ is not None:
        # The engine refitted on the validation rows: their scores now are in-sample; use the held-out ones.
        held_proba, held_gold = engine.heldout_
        known = held_gold.any(axis=1)
        record = abstain.tune(
            held_proba[known], np.argmax(held_gold[known], axis=1).tolist(), target_precision=target_precision
        )
    else:
        index = {label: i for i, label in enumerate(engine.classes_)}
        rows = [i for i, labels in enumerate(validation.labels) if labels and labels[0] in index]
        gold = [index[validation.labels[i][0]] for i in rows]
        record = abstain.tune(proba[rows], gold, target_precision=target_precision)
    if test is not None and len(test):
        record["test"] = abstain_effect(engine, test, abstain.rule_of(record))
    return record


def abstain_effect(engine: Engine, data: LabeledTexts, rule: abstain.AbstainRule) -> dict[str, Any]:
    """Precision and coverage of the decisions `rule` keeps on labeled `data`, and the precision of all of them."""
    proba = engine.predict_proba(data.texts)
    predicted = [engine.classes_[int(i)] for i in np.argmax(proba, axis=1)]
    correct = np.array([p in gold for p, gold in zip(predicted, data.labels, strict=True)], dtype=np.bool_)
    kept = ~rule.fires(proba)
    return {
        "n": len(data),
        "coverage": round(float(kept.mean()), 4) if len(data) else 0.0,
        "precision": round(float(correct[kept].mean()), 4) if kept.any() else 0.0,
        "precision_all": round(float(correct.mean()), 4) if len(data) else 0.0,
    }


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
    target_precision: float = abstain.DEFAULT_TARGET_PRECISION,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Train `engine_name` on the dataset's train split and evaluate on its validation and test splits
    (`encoder`: the sentence encoder, for engines that need one); tune the abstain rule on validation for
    `target_precision` (the report's `abstain`). `checkpoint_dir`: where a resumable engine keeps its
    checkpoints, so that a fit started again after a crash continues."""
    abstain.check_target(target_precision)
    engine = create_engine(engine_name, encoder=encoder, **(params or {}))
    if checkpoint_dir is not None and engine.resumable:
        engine.checkpoint_dir = checkpoint_dir
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
    val_proba = engine.predict_proba(dataset.validation.texts)
    test = dataset.test if dataset.test is not None and len(dataset.test) else None
    report: dict[str, Any] = {
        "engine": engine.name,
        "task": engine.task_.value,
        "labels": list(engine.classes_),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_seconds": round(seconds, 3),
        "params": engine.get_params(),
        "data": dataset.summary(),
        "calibration": calibration_summary(engine.get_params()),
        "validation": evaluate_engine(engine, dataset.validation, val_proba),
        "test": evaluate_engine(engine, test) if test is not None else None,
        "abstain": tune_abstain(engine, dataset.validation, val_proba, test, target_precision),
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
