"""The "features + head + calibrator" machinery the engines share.

A head is a linear map from an engine's features to one score per label, followed by a calibrator (chosen by
cross-fitted ECE, see `engines.calibration`) and, for multi-label models, per-label thresholds. `calibrate` is
the one place where held-out scores become a calibrator and thresholds; `fit_head` fits a class-balanced
logistic-regression head (the embedding and combined engines, and any engine whose features are dense or
sparse vectors):

- validation with at least `min_validation_rows` rows: C is chosen on it, calibration and thresholds are fitted
  on its scores, then the head is refitted on train + validation with that C;
- a smaller validation set: train and validation are pooled and C, calibration and thresholds come from
  stratified k-fold out-of-fold scores (k up to 5, limited by the rarest label);
- fewer than 2 examples of some label: no held-out estimate is possible, `default_c` is used and the
  probabilities are the logistic regression's own (temperature 1).

`save_head`/`load_head` write and read the head's arrays and its JSON part.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import TaskType
from labelwise.engines.calibration import (
    METHODS,
    Calibrator,
    Selection,
    TemperatureCalibrator,
    calibrator_from_dict,
    select_calibrator,
    tune_thresholds,
)
from labelwise.errors import DataError

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def calibrate(
    scores: FloatArray,
    targets: BoolArray,
    task: TaskType,
    *,
    methods: tuple[str, ...] = METHODS,
    seed: int = 13,
    min_positives: int = 5,
) -> tuple[Selection, FloatArray | None]:
    """The calibrator chosen on held-out `scores`, and per-label thresholds tuned on its probabilities
    (multi-label only; None for single-label)."""
    selection = select_calibrator(scores, targets, task, methods=methods, seed=seed)
    if task is not TaskType.MULTI_LABEL:
        return selection, None
    proba = selection.calibrator.transform(scores)
    return selection, tune_thresholds(proba, targets, min_positives=min_positives)


def calibration_summary(selection: Selection, task: TaskType) -> dict[str, Any]:
    """The chosen method, its one-number parameter if it has one, and the cross-fitted measurements."""
    calibrator = selection.calibrator
    summary: dict[str, Any] = {"method": calibrator.method, "reason": selection.reason}
    if isinstance(calibrator, TemperatureCalibrator):
        summary["temperature"] = calibrator.temperature
    summary["cv_ece"] = {method: round(value, 5) for method, value in selection.ece.items()}
    if task is TaskType.SINGLE_LABEL:
        summary["cv_accuracy"] = {method: round(value, 5) for method, value in selection.accuracy.items()}
    return summary


def check_calibration_methods(methods: tuple[str, ...]) -> None:
    """`DataError` unless `methods` names at least one known calibration method and nothing else."""
    if not methods or any(m not in METHODS for m in methods):
        raise DataError(f"calibration: choose among {', '.join(METHODS)}", param="calibration")


@dataclass(frozen=True, slots=True)
class Head:
    """A fitted linear head: scores = x @ coef + intercept, then the calibrator (and thresholds)."""

    coef: NDArray[np.float32]  # (n_features, n_classes)
    intercept: FloatArray
    calibrator: Calibrator
    thresholds: FloatArray | None
    info: dict[str, Any]

    def proba(self, x: Any) -> FloatArray:
        return self.calibrator.transform(head_scores(x, self.coef, self.intercept))


@dataclass(frozen=True, slots=True)
class HeadConfig:
    c_grid: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    default_c: float = 16.0
    calibration: tuple[str, ...] = METHODS
    min_validation_rows: int = 50
    min_threshold_positives: int = 5
    seed: int = 13
    refit: bool = True


def train_logistic(
    x: Any, targets: BoolArray, c: float, task: TaskType, seed: int
) -> tuple[NDArray[np.float32], FloatArray]:
    """Weights (n_features, K) and intercepts (K,) of a class-balanced logistic regression."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    k = targets.shape[1]
    coef = np.zeros((x.shape[1], k), dtype=np.float64)
    intercept = np.zeros(k, dtype=np.float64)
    with warnings.catch_warnings():
        # A few more iterations would barely move these weights; not converging is not an error here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task is TaskType.SINGLE_LABEL:
            gold = np.argmax(targets, axis=1)
            model = LogisticRegression(C=c, class_weight="balanced", max_iter=300, random_state=seed).fit(x, gold)
            present = model.classes_
            if len(present) == 2 and model.coef_.shape[0] == 1:
                # Binary: sklearn keeps one logit; split it so that softmax over the two columns equals it.
                coef[:, present[0]], coef[:, present[1]] = -model.coef_[0] / 2, model.coef_[0] / 2
                intercept[present[0]], intercept[present[1]] = -model.intercept_[0] / 2, model.intercept_[0] / 2
            else:
                coef[:, present] = model.coef_.T
                intercept[present] = model.intercept_
            missing = np.setdiff1d(np.arange(k), present)
            intercept[missing] = -1e3  # a label absent from this fold can never win
        else:
            for j in range(k):
                column = targets[:, j]
                if column.all() or not column.any():
                    intercept[j] = 5.0 if column.all() else -5.0
                    continue
                model = LogisticRegression(C=c, class_weight="balanced", max_iter=300, random_state=seed)
                model.fit(x, column)
                coef[:, j] = model.coef_[0]
                intercept[j] = model.intercept_[0]
    return coef.astype(np.float32), intercept


def _quality(scores: FloatArray, targets: BoolArray, task: TaskType) -> float:
    """Accuracy (single-label) or micro F1 at score 0 (multi-label): higher is better."""
    if task is TaskType.SINGLE_LABEL:
        return float(targets[np.arange(len(scores)), np.argmax(scores, axis=1)].mean())
    predicted = scores > 0
    tp = float((predicted & targets).sum())
    return 2 * tp / max(float(predicted.sum() + targets.sum()), 1.0)


def _folds(targets: BoolArray, task: TaskType, seed: int) -> NDArray[np.int64] | None:
    """Stratified fold ids for pooled rows, or None when a label has fewer than 2 examples."""
    if task is TaskType.SINGLE_LABEL:
        gold = np.argmax(targets, axis=1)
        counts = np.bincount(gold, minlength=targets.shape[1])
        smallest = int(counts[counts > 0].min())
    else:
        gold = np.zeros(len(targets), dtype=np.int64)
        smallest = len(targets)
    k = min(5, smallest)
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(targets), dtype=np.int64)
    for label in np.unique(gold):
        rows = rng.permutation(np.flatnonzero(gold == label))
        folds[rows] = (np.arange(len(rows)) + int(rng.integers(k))) % k
    return folds


def fit_head(
    x_train: Any, y_train: BoolArray, x_val: Any, y_val: BoolArray, task: TaskType, config: HeadConfig
) -> Head:
    """Choose C, fit calibration and thresholds, and fit the final head (see the module docstring)."""
    import sklearn.linear_model  # noqa: F401  (loads its OpenMP runtime before the limits below are set)
    from threadpoolctl import threadpool_limits

    # L-BFGS on these small problems makes many tiny BLAS and OpenMP calls; with their threads competing for
    # the cores (the encoder, other workers) each call waits on thread hand-offs. Measured on banking77, 8
    # examples a label, a loaded 2-core machine: 155 s with the default threads, 8.5-10.6 s with one.
    with threadpool_limits(limits=1):
        return _fit_head(x_train, y_train, x_val, y_val, task, config)


def _fit_head(
    x_train: Any, y_train: BoolArray, x_val: Any, y_val: BoolArray, task: TaskType, config: HeadConfig
) -> Head:
    from scipy import sparse

    stack = sparse.vstack if sparse.issparse(x_train) else np.vstack
    grid: dict[str, float] = {}
    if len(y_val) >= config.min_validation_rows:
        mode, x_all, y_all = "validation", stack([x_train, x_val]), np.vstack([y_train, y_val])
        trained = {c: train_logistic(x_train, y_train, c, task, config.seed) for c in config.c_grid}
        held_out = {c: head_scores(x_val, *weights) for c, weights in trained.items()}
        held_targets = y_val
    else:
        x_all, y_all = stack([x_train, x_val]) if len(y_val) else x_train, np.vstack([y_train, y_val])
        folds = _folds(y_all, task, config.seed)
        if folds is None:
            coef, intercept = train_logistic(x_all, y_all, config.default_c, task, config.seed)
            calibrator = TemperatureCalibrator(task, 1.0)
            thresholds = np.full(y_all.shape[1], 0.5) if task is TaskType.MULTI_LABEL else None
            info = {"C": config.default_c, "mode": "fixed C: a label has fewer than 2 examples", "calibration": {}}
            return Head(coef, intercept, calibrator, thresholds, info)
        mode, held_targets, held_out = f"{int(folds.max()) + 1}-fold cross-validation", y_all, {}
        for c in config.c_grid:
            oof = np.zeros(y_all.shape, dtype=np.float64)
            for f in np.unique(folds):
                fit_rows = folds != f
                oof[folds == f] = head_scores(
                    x_all[folds == f], *train_logistic(x_all[fit_rows], y_all[fit_rows], c, task, config.seed)
                )
            held_out[c] = oof
    for c, scores in held_out.items():
        grid[f"{c:g}"] = round(_quality(scores, held_targets, task), 6)
    chosen = max(config.c_grid, key=lambda c: (grid[f"{c:g}"], -c))  # ties go to the stronger regularization
    selection, thresholds = calibrate(
        held_out[chosen],
        held_targets,
        task,
        methods=config.calibration,
        seed=config.seed,
        min_positives=config.min_threshold_positives,
    )
    if mode == "validation" and not config.refit:
        coef, intercept = trained[chosen]  # kept trained on train only: validation stays unseen (auto engine)
    else:
        coef, intercept = train_logistic(x_all, y_all, chosen, task, config.seed)
    calibration = calibration_summary(selection, task)
    info = {"C": chosen, "mode": mode, "refit": config.refit, "c_grid_held_out": grid, "calibration": calibration}
    return Head(coef, intercept, selection.calibrator, thresholds, info)


def head_scores(x: Any, coef: NDArray[np.float32], intercept: FloatArray) -> FloatArray:
    """x @ coef + intercept, computed so that a row's scores never depend on the other rows of the batch.

    A float32 matrix product takes another BLAS path for one row than for several, which changes the last
    bits, and calibration then moves probabilities by 1e-6: dense rows go through float64 instead (coef is
    small here). Sparse rows are multiplied row by row anyway; they stay float32 so the large TF-IDF weight
    matrix is not copied to float64 on every call.
    """
    from scipy import sparse

    if sparse.issparse(x):
        raw = np.asarray(x.astype(np.float32) @ coef, dtype=np.float64)
    else:
        raw = np.asarray(x, dtype=np.float64) @ coef.astype(np.float64)
    out: FloatArray = raw + intercept
    return out


def save_head(head: Head, directory: Path, prefix: str = "") -> dict[str, Any]:
    """Write the head's arrays; returns the JSON part for the caller's metadata file."""
    np.save(directory / f"{prefix}coef.npy", head.coef, allow_pickle=False)
    np.save(directory / f"{prefix}intercept.npy", head.intercept, allow_pickle=False)
    return {
        "calibration": head.calibrator.to_dict(),
        "thresholds": None if head.thresholds is None else head.thresholds.tolist(),
        "info": head.info,
    }


def load_head(meta: dict[str, Any], directory: Path, n_features: int, n_classes: int, prefix: str = "") -> Head:
    """Read a head written by `save_head`; `ValueError` when shapes disagree."""
    coef = np.load(directory / f"{prefix}coef.npy", allow_pickle=False)
    intercept = np.load(directory / f"{prefix}intercept.npy", allow_pickle=False)
    if coef.shape != (n_features, n_classes) or intercept.shape != (n_classes,):
        raise ValueError(f"weights of shape {coef.shape} do not match {n_features} features, {n_classes} labels")
    thresholds = meta["thresholds"]
    if thresholds is not None and len(thresholds) != n_classes:
        raise ValueError("thresholds do not match the labels")
    return Head(
        coef,
        intercept,
        calibrator_from_dict(meta["calibration"]),
        None if thresholds is None else np.asarray(thresholds, dtype=np.float64),
        dict(meta.get("info") or {}),
    )
