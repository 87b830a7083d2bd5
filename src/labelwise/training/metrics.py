"""Evaluation metrics for single- and multi-label classifiers, as one JSON-able dictionary.

Conventions, chosen to match scikit-learn where it has one:

- Precision, recall or F1 with a zero denominator count as 0.
- Macro and weighted averages run over labels that occur in the gold data or in the predictions; a label
  that is neither (no support, never predicted) says nothing about the model and is left out.
- Gold labels the model does not know (absent from `classes`) count as errors: a single-label row with one
  is wrong whatever was predicted, a multi-label one is a false negative. They appear in `per_label` and
  the confusion matrix after the known labels, so the report shows where they went.
- ROC AUC and PR AUC are macro averages over known labels for which they are defined (ROC: positives and
  negatives present; PR: positives present), or None when none is.
- ECE uses 15 equal-width bins over (0, 1]: top-1 confidence against correctness for single-label, every
  label-level probability against the gold indicator for multi-label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelwise.domain import TaskType
from labelwise.engines.calibration import expected_calibration_error, reliability
from labelwise.errors import DataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def evaluate(
    gold: Sequence[tuple[str, ...]],
    proba: ArrayLike,
    classes: list[str],
    task: TaskType,
    thresholds: ArrayLike | None = None,
) -> dict[str, Any]:
    """Every metric of the report for predicted probabilities `proba` (rows follow `gold`, columns `classes`).

    Single-label decisions are the argmax; multi-label decisions are the labels at or above `thresholds`
    (0.5 when None). See the module docstring for the conventions; the result holds only plain Python values.
    """
    scores = np.asarray(proba, dtype=np.float64)
    if len(gold) == 0:
        raise DataError("nothing to evaluate: no labeled rows")
    if scores.shape != (len(gold), len(classes)):
        raise ValueError(f"proba has shape {scores.shape}, expected {(len(gold), len(classes))}")
    if task is TaskType.MULTI_LABEL:
        cut = np.full(len(classes), 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        return _evaluate_multi(gold, scores, classes, cut)
    return _evaluate_single(gold, scores, classes)


def _label_space(gold: Sequence[tuple[str, ...]], classes: list[str]) -> list[str]:
    known = set(classes)
    return classes + sorted({label for labels in gold for label in labels if label not in known})


def _evaluate_single(gold: Sequence[tuple[str, ...]], proba: FloatArray, classes: list[str]) -> dict[str, Any]:
    labels = _label_space(gold, classes)
    position = {label: i for i, label in enumerate(labels)}
    # A row without a gold label cannot be right; index -1 never equals a prediction.
    truth = np.array([position[g[0]] if g else -1 for g in gold], dtype=np.int64)
    predicted = np.argmax(proba, axis=1).astype(np.int64)
    correct = predicted == truth
    size = len(labels)
    matrix = np.zeros((size, size), dtype=np.int64)
    has_gold = truth >= 0
    np.add.at(matrix, (truth[has_gold], predicted[has_gold]), 1)
    tp = np.diag(matrix).astype(np.float64)
    support = np.bincount(truth[has_gold], minlength=size).astype(np.float64)
    predicted_count = np.bincount(predicted, minlength=size).astype(np.float64)
    table = _prf_table(labels, tp, predicted_count, support)
    conf = proba.max(axis=1)
    indicator = np.zeros(proba.shape, dtype=bool)
    known = has_gold & (truth < len(classes))
    indicator[np.flatnonzero(known), truth[known]] = True
    return {
        "task": TaskType.SINGLE_LABEL.value,
        "n": len(gold),
        "accuracy": float(correct.mean()),
        **table,
        "roc_auc": _macro_roc_auc(indicator, proba),
        "pr_auc": _macro_average_precision(indicator, proba),
        "ece": expected_calibration_error(conf, correct),
        "reliability": reliability(conf, correct),
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
    }


def _evaluate_multi(
    gold: Sequence[tuple[str, ...]], proba: FloatArray, classes: list[str], thresholds: FloatArray
) -> dict[str, Any]:
    labels = _label_space(gold, classes)
    position = {label: i for i, label in enumerate(labels)}
    n, k = len(gold), len(classes)
    truth = np.zeros((n, len(labels)), dtype=bool)
    for row, row_labels in enumerate(gold):
        truth[row, [position[label] for label in row_labels]] = True
    # Unknown labels are never predicted: their columns stay False.
    decided = np.zeros_like(truth)
    decided[:, :k] = proba >= thresholds[np.newaxis, :]
    tp = (truth & decided).sum(axis=0).astype(np.float64)
    fp = (~truth & decided).sum(axis=0).astype(np.float64)
    fn = (truth & ~decided).sum(axis=0).astype(np.float64)
    support = tp + fn
    table = _prf_table(labels, tp, tp + fp, support)
    micro = _prf(float(tp.sum()), float(tp.sum() + fp.sum()), float(support.sum()))
    known_truth = truth[:, :k]
    return {
        "task": TaskType.MULTI_LABEL.value,
        "n": n,
        "micro": micro,
        **table,
        "hamming_loss": float((truth != decided).mean()),
        "subset_accuracy": float((truth == decided).all(axis=1).mean()),
        "roc_auc": _macro_roc_auc(known_truth, proba),
        "pr_auc": _macro_average_precision(known_truth, proba),
        "ece": expected_calibration_error(proba.ravel(), known_truth.ravel()),
        "reliability": reliability(proba.ravel(), known_truth.ravel()),
        "per_label_confusion": {
            label: [[int(n - tp[i] - fp[i] - fn[i]), int(fp[i])], [int(fn[i]), int(tp[i])]]
            for i, label in enumerate(labels)
        },
    }


def _prf(tp: float, predicted: float, support: float) -> dict[str, float]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / support if support else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _prf_table(labels: list[str], tp: FloatArray, predicted: FloatArray, support: FloatArray) -> dict[str, Any]:
    """Per-label precision/recall/F1/support with their macro and support-weighted averages."""
    rows = [_prf(float(t), float(p), float(s)) for t, p, s in zip(tp, predicted, support, strict=True)]
    per_label = {label: {**row, "support": int(s)} for label, row, s in zip(labels, rows, support, strict=True)}
    active = [i for i in range(len(labels)) if support[i] > 0 or predicted[i] > 0]
    total = float(support[active].sum()) if active else 0.0
    macro: dict[str, float] = {}
    weighted: dict[str, float] = {}
    for key in ("precision", "recall", "f1"):
        values = np.array([rows[i][key] for i in active], dtype=np.float64)
        macro[key] = float(values.mean()) if active else 0.0
        weighted[key] = float(values @ support[active] / total) if total else 0.0
    return {"macro": macro, "weighted": weighted, "per_label": per_label}


def _macro_roc_auc(truth: NDArray[np.bool_], proba: FloatArray) -> float | None:
    from sklearn.metrics import roc_auc_score

    values = [
        float(roc_auc_score(truth[:, j], proba[:, j]))
        for j in range(proba.shape[1])
        if 0 < truth[:, j].sum() < len(truth)
    ]
    return float(np.mean(values)) if values else None


def _macro_average_precision(truth: NDArray[np.bool_], proba: FloatArray) -> float | None:
    from sklearn.metrics import average_precision_score

    values = [
        float(average_precision_score(truth[:, j], proba[:, j])) for j in range(proba.shape[1]) if truth[:, j].any()
    ]
    return float(np.mean(values)) if values else None
