"""The `embedding` engine: the frozen sentence encoder plus a calibrated logistic-regression head.

Texts become L2-normalized all-MiniLM-L6-v2 vectors (labelwise.encoder); a logistic regression (multinomial
for single-label, one binary model per label for multi-label) maps them to scores; the calibration method is
chosen by cross-fitted ECE exactly as the linear engine does (training.calibration); multi-label models get
per-label thresholds. Works from a handful of examples per label:

- validation with at least `min_validation_rows` rows: C is chosen on it, calibration and thresholds are fitted
  on its scores, then the head is refitted on train + validation with that C;
- a smaller validation set: train and validation are pooled and C, calibration and thresholds come from
  stratified k-fold out-of-fold scores (k up to 5, limited by the rarest label);
- fewer than 2 examples of some label: no held-out estimate is possible, `default_c` is used and the
  probabilities are the logistic regression's own (temperature 1).

Artifacts are `embedding.json` plus `coef.npy` and `intercept.npy`; the JSON records the encoder's model id
and fingerprint, and loading refuses a model trained on other vectors.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, TaskType
from labelwise.encoder.windows import LONG_TEXT_CHOICES, LongText
from labelwise.engines.base import Engine, FloatArray, ProgressCallback
from labelwise.errors import DataError, ModelLoadError
from labelwise.training.calibration import (
    METHODS,
    Calibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
    select_calibrator,
    tune_thresholds,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BoolArray = NDArray[np.bool_]


# The head, shared with the `auto` engine (which fits it on TF-IDF features joined with embeddings) --------


@dataclass(frozen=True, slots=True)
class Head:
    """A fitted linear head: scores = x @ coef + intercept, then the calibrator (and thresholds)."""

    coef: NDArray[np.float32]  # (n_features, n_classes)
    intercept: FloatArray
    calibrator: Calibrator
    thresholds: FloatArray | None
    info: dict[str, Any]

    def proba(self, x: Any) -> FloatArray:
        return self.calibrator.transform(_scores(x, self.coef, self.intercept))


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
        held_out = {c: _scores(x_val, *weights) for c, weights in trained.items()}
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
                oof[folds == f] = _scores(
                    x_all[folds == f], *train_logistic(x_all[fit_rows], y_all[fit_rows], c, task, config.seed)
                )
            held_out[c] = oof
    for c, scores in held_out.items():
        grid[f"{c:g}"] = round(_quality(scores, held_targets, task), 6)
    chosen = max(config.c_grid, key=lambda c: (grid[f"{c:g}"], -c))  # ties go to the stronger regularization
    selection = select_calibrator(held_out[chosen], held_targets, task, methods=config.calibration, seed=config.seed)
    thresholds = None
    if task is TaskType.MULTI_LABEL:
        proba = selection.calibrator.transform(held_out[chosen])
        thresholds = tune_thresholds(proba, held_targets, min_positives=config.min_threshold_positives)
    if mode == "validation" and not config.refit:
        coef, intercept = trained[chosen]  # kept trained on train only: validation stays unseen (auto engine)
    else:
        coef, intercept = train_logistic(x_all, y_all, chosen, task, config.seed)
    calibration: dict[str, Any] = {"method": selection.calibrator.method, "reason": selection.reason}
    calibration["cv_ece"] = {m: round(v, 5) for m, v in selection.ece.items()}
    info = {"C": chosen, "mode": mode, "refit": config.refit, "c_grid_held_out": grid, "calibration": calibration}
    return Head(coef, intercept, selection.calibrator, thresholds, info)


def _scores(x: Any, coef: NDArray[np.float32], intercept: FloatArray) -> FloatArray:
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


# Data helpers shared by the encoder-based engines --------------------------------------------------------


def classes_of(train: LabeledTexts, task: TaskType) -> list[str]:
    """Sorted label names of the training rows; `DataError` for data no classifier can learn from."""
    if len(train) == 0:
        raise DataError("train: no rows", param="train")
    if task is TaskType.SINGLE_LABEL:
        for i, labels in enumerate(train.labels):
            if len(labels) != 1:
                raise DataError(f"train row {i + 1}: a single-label row needs exactly one label", param="train")
    classes = sorted({label for labels in train.labels for label in labels})
    if len(classes) < (2 if task is TaskType.SINGLE_LABEL else 1):
        raise DataError(f"train: found {len(classes)} label(s), a classifier needs at least 2", param="train")
    return classes


def indicator(labels: Sequence[tuple[str, ...]], classes: list[str]) -> BoolArray:
    position = {label: j for j, label in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, row in enumerate(labels):
        for label in row:
            if (j := position.get(label)) is not None:
                out[i, j] = True
    return out


def validation_rows(validation: LabeledTexts, classes: list[str], task: TaskType) -> tuple[list[str], BoolArray]:
    """Validation texts and gold indicators; single-label rows with a label unknown to train are dropped."""
    targets = indicator(validation.labels, classes)
    keep = targets.sum(axis=1) == 1 if task is TaskType.SINGLE_LABEL else np.ones(len(validation), dtype=bool)
    texts = [t for t, k in zip(validation.texts, keep, strict=True) if k]
    return texts, targets[keep]


def silent(step: str, fraction: float) -> None:
    """The progress callback used when the caller gives none."""


# The engine ---------------------------------------------------------------------------------------------


class EmbeddingEngine(Engine):
    """Sentence embeddings and a calibrated logistic-regression head (see the module docstring)."""

    name = "embedding"

    def __init__(
        self,
        *,
        c_grid: Sequence[float] = (1.0, 4.0, 16.0, 64.0),
        default_c: float = 16.0,
        calibration: Sequence[str] = METHODS,
        long_text: LongText = "mean",
        min_validation_rows: int = 50,
        min_threshold_positives: int = 5,
        refit: bool = True,
        seed: int = 13,
    ) -> None:
        self.c_grid = tuple(float(c) for c in c_grid)
        self.default_c = float(default_c)
        self.calibration = tuple(calibration)
        self.long_text = long_text
        self.min_validation_rows = min_validation_rows
        self.min_threshold_positives = min_threshold_positives
        self.refit = refit
        self.seed = seed

    def _head_config(self) -> HeadConfig:
        if not self.c_grid or min(self.c_grid) <= 0 or self.default_c <= 0:
            raise DataError("c_grid: give at least one positive C", param="c_grid")
        if not self.calibration or any(m not in METHODS for m in self.calibration):
            raise DataError(f"calibration: choose among {', '.join(METHODS)}", param="calibration")
        if self.long_text not in LONG_TEXT_CHOICES:
            raise DataError(f"long_text: choose one of {', '.join(LONG_TEXT_CHOICES)}", param="long_text")
        return HeadConfig(
            self.c_grid,
            self.default_c,
            self.calibration,
            self.min_validation_rows,
            self.min_threshold_positives,
            self.seed,
            self.refit,
        )

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        """Embed `train` and `validation`, then fit the head (C, calibration, thresholds as described above)."""
        step = progress or silent
        task = TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL
        classes = classes_of(train, task)
        val_texts, y_val = validation_rows(validation, classes, task)
        step("embedding texts", 0.0)
        encoder = _encoder()
        vectors = self._encode(encoder, [*train.texts, *val_texts])
        return self.fit_vectors(
            vectors[: len(train)], indicator(train.labels, classes), vectors[len(train) :], y_val, classes, task, step
        )

    def fit_vectors(
        self,
        x_train: NDArray[np.float32],
        y_train: BoolArray,
        x_val: NDArray[np.float32],
        y_val: BoolArray,
        classes: list[str],
        task: TaskType,
        progress: ProgressCallback | None = None,
    ) -> Self:
        """Fit from vectors already computed by the shared encoder (the `auto` engine embeds only once)."""
        step = progress or silent
        started = time.perf_counter()
        step("fitting the head", 0.6)
        head = fit_head(x_train, y_train, x_val, y_val, task, self._head_config())
        encoder = _encoder()
        self._head = head
        self.classes_ = classes
        self.task_ = task
        self.thresholds_ = head.thresholds
        self.encoder_ = {"model_id": encoder.model_id, "sha256": encoder.sha256}
        self.fit_info_: dict[str, Any] = {
            **head.info,
            "train_rows": len(y_train),
            "validation_rows": len(y_val),
            "fit_seconds": round(time.perf_counter() - started, 3),
        }
        step("done", 1.0)
        logger.info("embedding engine fitted", extra={"C": head.info["C"], "mode": head.info["mode"]})
        return self

    def _encode(self, encoder: Any, texts: Sequence[str]) -> NDArray[np.float32]:
        vectors: NDArray[np.float32] = encoder.encode(texts, long_text=self.long_text)
        return vectors

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Calibrated probabilities; every text is encoded independently of the others in its batch."""
        self.check_fitted()
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a sequence of texts, not one string")
        return self._head.proba(self._encode(_encoder(), texts))

    def predict_proba_vectors(self, vectors: NDArray[np.float32]) -> FloatArray:
        self.check_fitted()
        return self._head.proba(vectors)

    def save(self, directory: Path) -> None:
        """Write `embedding.json`, `coef.npy` and `intercept.npy`."""
        self.check_fitted()
        meta = {
            "engine": self.name,
            "format": FORMAT_VERSION,
            "task": self.task_.value,
            "classes": self.classes_,
            "encoder": self.encoder_,
            "hyperparameters": self._hyperparameters(),
            "head": save_head(self._head, directory),
            "fit_info": self.fit_info_,
        }
        (directory / "embedding.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by `save`; `ModelLoadError` if files are bad or the encoder differs."""
        try:
            meta = json.loads((directory / "embedding.json").read_text(encoding="utf-8"))
            if meta.get("engine") != cls.name or meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"not an embedding model of format {FORMAT_VERSION}")
            params = dict(meta["hyperparameters"])
            engine = cls(**params)
            classes = [str(c) for c in meta["classes"]]
            head = load_head(meta["head"], directory, _dimensions(), len(classes))
            recorded = dict(meta["encoder"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot load embedding model from {directory.name}: {exc}") from exc
        check_encoder(recorded, directory.name)
        engine._head = head
        engine.classes_ = classes
        engine.task_ = TaskType(meta["task"])
        engine.thresholds_ = head.thresholds
        engine.encoder_ = recorded
        engine.fit_info_ = dict(meta.get("fit_info") or {})
        return engine

    def get_params(self) -> dict[str, Any]:
        params = self._hyperparameters()
        if self.is_fitted():
            params.update(self.fit_info_)
            params["encoder"] = self.encoder_
        return params

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "c_grid": list(self.c_grid),
            "default_c": self.default_c,
            "calibration": list(self.calibration),
            "long_text": self.long_text,
            "min_validation_rows": self.min_validation_rows,
            "min_threshold_positives": self.min_threshold_positives,
            "refit": self.refit,
            "seed": self.seed,
        }


def _encoder() -> Any:
    from labelwise.encoder import get_encoder

    return get_encoder()


def _dimensions() -> int:
    from labelwise.encoder import DIMENSIONS

    return DIMENSIONS


def check_encoder(recorded: dict[str, Any], model_name: str) -> None:
    """`ModelLoadError` when a model was trained on vectors from another encoder than the one loaded here."""
    encoder = _encoder()
    if recorded.get("model_id") != encoder.model_id or recorded.get("sha256") != encoder.sha256:
        raise ModelLoadError(
            f"cannot load {model_name}: trained with encoder {recorded.get('model_id')} "
            f"({str(recorded.get('sha256'))[:12]}), this server runs {encoder.model_id} ({encoder.sha256[:12]})"
        )
