"""Turn raw decision scores into calibrated probabilities, and tune multi-label decision thresholds.

Shared by every engine that produces scores (linear margins, embedding-head logits, similarities). Three
methods, all fitted on held-out scores:

- `temperature`: one scale for all columns; softmax (single-label) or sigmoid (multi-label) of score / T.
  It never changes the ranking of labels, so single-label accuracy is untouched.
- `sigmoid` (Platt): per column sigmoid(a * score + b); single-label rows are then normalized.
- `isotonic`: per column a monotone step-free (interpolated) map; single-label rows are then normalized.

With two labels (single-label) `sigmoid` and `isotonic` map the one margin, score 2 - score 1, to the second
label's probability instead (`binary`): mapping each column on its own and normalizing can reverse a decision
and cannot shape the margin's curve. The binary isotonic map keeps every decision (0.5 at a margin of 0). On
sst2 a fine-tuned model's confidences were too low at the top and too high in the middle, a shape one
temperature cannot fix (see bench/README.md).

`select_calibrator` chooses among them by expected calibration error measured with cross-fitting (fit on one
half of the held-out rows, score the other half, repeated), so that no method is judged on the rows it was
fitted on. Applying a calibrator needs NumPy only; its state is JSON (`to_dict`/`calibrator_from_dict`).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labelwise.domain import TaskType

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

METHODS: tuple[str, ...] = ("temperature", "sigmoid", "isotonic")
_EPS = 1e-12

# Measuring calibration: the engines choose their calibrator by it, and the training report shows it.

ECE_BINS = 15


def expected_calibration_error(conf: ArrayLike, correct: ArrayLike, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the bins' row counts.

    `conf` holds probabilities in [0, 1], `correct` booleans (or 0/1) of the same length. Bin b covers
    (b/bins, (b+1)/bins], with 0 in the first bin. No rows means no error: 0.0.
    """
    stats = _bin_stats(np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64), bins)
    n = sum(count for count, _, _ in stats)
    if n == 0:
        return 0.0
    return float(sum(count * abs(acc - cf) for count, cf, acc in stats) / n)


def reliability(conf: ArrayLike, correct: ArrayLike, bins: int = ECE_BINS) -> dict[str, Any]:
    """The reliability diagram data: per bin its bounds, row count, mean confidence and accuracy (None if empty)."""
    stats = _bin_stats(np.asarray(conf, dtype=np.float64), np.asarray(correct, dtype=np.float64), bins)
    edges = _edges(bins)
    return {
        "bins": [
            {
                "lo": float(edges[b]),
                "hi": float(edges[b + 1]),
                "count": count,
                "confidence": cf if count else None,
                "accuracy": acc if count else None,
            }
            for b, (count, cf, acc) in enumerate(stats)
        ]
    }


def _edges(bins: int) -> FloatArray:
    return np.linspace(0.0, 1.0, bins + 1)


def _bin_stats(conf: FloatArray, correct: FloatArray, bins: int) -> list[tuple[int, float, float]]:
    if conf.shape != correct.shape:
        raise ValueError("conf and correct differ in shape")
    # side="left": a confidence equal to an upper edge belongs to the bin that edge closes.
    index = np.clip(np.searchsorted(_edges(bins), conf, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=conf, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    return [
        (int(c), float(s / c) if c else 0.0, float(a / c) if c else 0.0)
        for c, s, a in zip(counts, conf_sum, acc_sum, strict=True)
    ]


class Calibrator(ABC):
    """Maps a score matrix (n, K) to probabilities (n, K); fitted state is plain numbers."""

    method: ClassVar[str]

    def __init__(self, task: TaskType, *, binary: bool = False) -> None:
        self.task = task
        self.binary = binary  # fitted on the margin of two single-label columns (one column of parameters)

    @abstractmethod
    def column_probabilities(self, scores: FloatArray) -> FloatArray:
        """Per-column probabilities before single-label normalization."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """The fitted parameters as JSON-able values."""

    def transform(self, scores: FloatArray) -> FloatArray:
        """Calibrated probabilities: rows sum to 1 for single-label, independent columns for multi-label."""
        if self.binary:
            q = np.clip(self.column_probabilities(scores[:, 1:2] - scores[:, 0:1])[:, 0], 0.0, 1.0)
            return np.column_stack([1.0 - q, q])
        proba = self.column_probabilities(scores)
        if self.task is TaskType.MULTI_LABEL:
            return proba
        return _normalize_rows(proba)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; `calibrator_from_dict` reverses it."""
        return {
            "method": self.method,
            "task": self.task.value,
            **self.state(),
            **({"binary": True} if self.binary else {}),
        }


class TemperatureCalibrator(Calibrator):
    method = "temperature"

    def __init__(self, task: TaskType, temperature: float) -> None:
        super().__init__(task)
        self.temperature = temperature

    def column_probabilities(self, scores: FloatArray) -> FloatArray:
        scaled = scores / self.temperature
        if self.task is TaskType.MULTI_LABEL:
            return _sigmoid(scaled)
        return _softmax(scaled)

    def transform(self, scores: FloatArray) -> FloatArray:
        # Softmax rows already sum to 1; skipping the renormalization keeps the single-text path short.
        return self.column_probabilities(scores)

    def state(self) -> dict[str, Any]:
        return {"temperature": self.temperature}


class SigmoidCalibrator(Calibrator):
    method = "sigmoid"

    def __init__(self, task: TaskType, slopes: ArrayLike, offsets: ArrayLike, *, binary: bool = False) -> None:
        super().__init__(task, binary=binary)
        self.slopes = np.asarray(slopes, dtype=np.float64)
        self.offsets = np.asarray(offsets, dtype=np.float64)

    def column_probabilities(self, scores: FloatArray) -> FloatArray:
        return _sigmoid(scores * self.slopes + self.offsets)

    def state(self) -> dict[str, Any]:
        return {"slopes": self.slopes.tolist(), "offsets": self.offsets.tolist()}


class IsotonicCalibrator(Calibrator):
    method = "isotonic"

    def __init__(
        self, task: TaskType, knots_x: Sequence[ArrayLike], knots_y: Sequence[ArrayLike], *, binary: bool = False
    ) -> None:
        super().__init__(task, binary=binary)
        self.knots_x = [np.asarray(x, dtype=np.float64) for x in knots_x]
        self.knots_y = [np.asarray(y, dtype=np.float64) for y in knots_y]
        # All columns' knots laid end to end, each column shifted past the previous one, so one np.interp call
        # serves every column (a call per column cost 0.3 ms per text with 151 labels).
        self._lo = np.array([x[0] for x in self.knots_x])
        self._hi = np.array([x[-1] for x in self.knots_x])
        span = float(np.max(self._hi - self._lo)) + 1.0 if self.knots_x else 1.0
        self._shift = span * np.arange(len(self.knots_x)) - self._lo
        self._flat_x = np.concatenate([x + d for x, d in zip(self.knots_x, self._shift, strict=True)] or [[0.0]])
        self._flat_y = np.concatenate(self.knots_y or [np.zeros(1)])

    def column_probabilities(self, scores: FloatArray) -> FloatArray:
        # Clipping to each column's own knot range keeps a point inside its column's stretch of the flat knots.
        placed = np.clip(scores, self._lo, self._hi) + self._shift
        out: FloatArray = np.interp(placed, self._flat_x, self._flat_y)
        return out

    def state(self) -> dict[str, Any]:
        return {"knots_x": [x.tolist() for x in self.knots_x], "knots_y": [y.tolist() for y in self.knots_y]}


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """Rebuild a calibrator from `Calibrator.to_dict()`; `ValueError` when the data is not one."""
    task = TaskType(data["task"])
    method = data.get("method")
    if method == "temperature":
        return TemperatureCalibrator(task, float(data["temperature"]))
    binary = bool(data.get("binary", False))
    if method == "sigmoid":
        return SigmoidCalibrator(task, data["slopes"], data["offsets"], binary=binary)
    if method == "isotonic":
        return IsotonicCalibrator(task, data["knots_x"], data["knots_y"], binary=binary)
    raise ValueError(f"unknown calibration method {method!r}")


# Fitting ------------------------------------------------------------------------------------------------


def fit_calibrator(method: str, scores: FloatArray, targets: BoolArray, task: TaskType) -> Calibrator:
    """Fit `method` on held-out `scores` (n, K) and the gold indicator matrix `targets` (n, K)."""
    if method == "temperature":
        return TemperatureCalibrator(task, _fit_temperature(scores, targets, task))
    binary = task is TaskType.SINGLE_LABEL and scores.shape[1] == 2
    if binary:  # one column: the margin, and whether the second label is the gold one
        scores, targets = scores[:, 1:2] - scores[:, 0:1], targets[:, 1:2]
    if method == "sigmoid":
        fits = [_fit_platt(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
        return SigmoidCalibrator(task, [a for a, _ in fits], [b for _, b in fits], binary=binary)
    if method == "isotonic":
        if binary:
            knots = [_fit_isotonic_keeping_sides(scores[:, 0], targets[:, 0])]
        else:
            knots = [_fit_isotonic(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
        return IsotonicCalibrator(task, [x for x, _ in knots], [y for _, y in knots], binary=binary)
    raise ValueError(f"unknown calibration method {method!r}")


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen calibrator and the cross-fitted measurements behind the choice."""

    calibrator: Calibrator
    ece: dict[str, float]
    accuracy: dict[str, float]
    reason: str


def select_calibrator(
    scores: FloatArray,
    targets: BoolArray,
    task: TaskType,
    *,
    methods: Sequence[str] = METHODS,
    repeats: int = 3,
    max_accuracy_loss: float = 0.005,
    min_rows: int = 40,
    seed: int = 0,
) -> Selection:
    """Choose the method with the lowest cross-fitted ECE, then fit it on all rows.

    Each repeat splits the rows in two halves (stratified by gold label for single-label), fits on one half
    and predicts the other, both ways; ECE is computed on the pooled out-of-fold probabilities and averaged
    over repeats. For single-label, per-column methods can change the argmax: a method whose cross-fitted
    accuracy falls more than `max_accuracy_loss` below the raw scores' accuracy is not eligible, because a
    calibrator should not trade decisions for confidence. With fewer than `min_rows` rows there is nothing
    to measure reliably and temperature scaling (one parameter) is used.
    """
    if len(methods) == 1:
        return Selection(fit_calibrator(methods[0], scores, targets, task), {}, {}, f"{methods[0]}: the only one")
    if len(scores) < min_rows:
        chosen = fit_calibrator("temperature", scores, targets, task)
        return Selection(chosen, {}, {}, f"temperature: fewer than {min_rows} validation rows")
    rng = np.random.default_rng(seed)
    ece = dict.fromkeys(methods, 0.0)
    acc = dict.fromkeys(methods, 0.0)
    for _ in range(repeats):
        fold = _two_folds(targets, task, rng)
        for method in methods:
            out = np.empty_like(scores)
            for half in (False, True):
                fitted = fit_calibrator(method, scores[fold == half], targets[fold == half], task)
                out[fold != half] = fitted.transform(scores[fold != half])
            e, a = _ece_and_accuracy(out, targets, task)
            ece[method] += e / repeats
            acc[method] += a / repeats
    raw = float(targets[np.arange(len(scores)), np.argmax(scores, axis=1)].mean())
    eligible = [m for m in methods if task is TaskType.MULTI_LABEL or acc[m] >= raw - max_accuracy_loss]
    best = min(eligible or ["temperature"], key=lambda m: ece[m])
    logger.info("calibration chosen", extra={"method": best, "cv_ece": {m: round(v, 4) for m, v in ece.items()}})
    reason = f"{best}: lowest cross-fitted ECE" + ("" if len(eligible) == len(methods) else " among eligible")
    return Selection(fit_calibrator(best, scores, targets, task), ece, acc, reason)


def _two_folds(targets: BoolArray, task: TaskType, rng: np.random.Generator) -> BoolArray:
    """A boolean fold mask; single-label rows alternate within each class so both halves see every class."""
    n = len(targets)
    fold = np.zeros(n, dtype=bool)
    if task is TaskType.SINGLE_LABEL:
        gold = np.argmax(targets, axis=1)
        for k in np.unique(gold):
            rows = rng.permutation(np.flatnonzero(gold == k))
            fold[rows[int(rng.integers(2)) :: 2]] = True
    else:
        fold[rng.permutation(n)[: n // 2]] = True
    return fold


def _ece_and_accuracy(proba: FloatArray, targets: BoolArray, task: TaskType) -> tuple[float, float]:
    if task is TaskType.MULTI_LABEL:
        return expected_calibration_error(proba.ravel(), targets.ravel()), 0.0
    top = np.argmax(proba, axis=1)
    correct = targets[np.arange(len(top)), top]
    return expected_calibration_error(proba.max(axis=1), correct), float(correct.mean())


def log_loss(scores: FloatArray, targets: BoolArray, task: TaskType, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `targets` under softmax (single-label) or per-label sigmoids (multi-label)
    of `scores / temperature`."""
    scaled = scores / temperature
    if task is TaskType.MULTI_LABEL:
        p = np.clip(_sigmoid(scaled), _EPS, 1 - _EPS)
        return float(-np.mean(np.where(targets, np.log(p), np.log1p(-p))))
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    picked = np.where(targets, shifted, 0.0).sum(axis=1) / np.maximum(targets.sum(axis=1), 1)
    return float(np.mean(log_norm - picked))


def tempered_log_loss(scores: FloatArray, targets: BoolArray, task: TaskType) -> float:
    """The log-loss at the temperature that minimizes it: how models compare when calibration comes after, so
    that confidence a temperature takes back is not held against one."""
    return log_loss(scores, targets, task, _fit_temperature(scores, targets, task))


def _fit_temperature(scores: FloatArray, targets: BoolArray, task: TaskType) -> float:
    """The temperature minimizing negative log-likelihood, searched on a log scale."""
    from scipy.optimize import minimize_scalar  # fit time only: serving imports this module without SciPy

    found = minimize_scalar(
        lambda log_t: log_loss(scores, targets, task, math.exp(log_t)),
        bounds=(math.log(1e-3), math.log(1e3)),
        method="bounded",
    )
    return float(math.exp(found.x))


def _fit_platt(score: FloatArray, target: BoolArray) -> tuple[float, float]:
    """Platt's sigmoid fit with his smoothed targets, which keep separable data from diverging."""
    from scipy.optimize import minimize

    positives = float(target.sum())
    negatives = float(len(target) - positives)
    goal = np.where(target, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))

    def loss(params: FloatArray) -> tuple[float, FloatArray]:
        z = params[0] * score + params[1]
        p = _sigmoid(z)
        value = float(np.sum(np.logaddexp(0.0, z) - goal * z))
        diff = p - goal
        return value, np.array([float(diff @ score), float(diff.sum())])

    prior = (positives + 1.0) / (len(target) + 2.0)
    start = np.array([1.0, math.log(prior / (1.0 - prior))])
    # A non-negative slope keeps the map monotone, so calibration never reverses a label's ranking.
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)])
    return float(found.x[0]), float(found.x[1])


def _fit_isotonic(
    score: FloatArray, target: BoolArray, low: float = 0.0, high: float = 1.0
) -> tuple[FloatArray, FloatArray]:
    """Knots of the increasing least-squares fit (pool adjacent violators) within [low, high], for `np.interp`."""
    from sklearn.isotonic import IsotonicRegression  # fit time only; applying needs NumPy alone

    if len(score) == 0:
        return np.array([0.0]), np.array([0.5])
    model = IsotonicRegression(y_min=low, y_max=high, increasing=True, out_of_bounds="clip")
    model.fit(score, target.astype(np.float64))
    return np.asarray(model.X_thresholds_, dtype=np.float64), np.asarray(model.y_thresholds_, dtype=np.float64)


def _fit_isotonic_keeping_sides(margin: FloatArray, target: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Isotonic knots for a two-label margin that never change a decision: fitted on each side of 0 on its own,
    at most 0.5 - 1e-6 below it and at least 0.5 + 1e-6 above, with a knot (0, 0.5) between. A plain fit's flat
    stretch across 0 moves decisions: on sst2 it cost 0.8 points of cross-fitted accuracy, which ruled it out."""
    below, above = margin < 0, margin > 0
    parts = [(np.zeros(1), np.full(1, 0.5))]
    if below.any():
        parts.insert(0, _fit_isotonic(margin[below], target[below], 0.0, 0.5 - 1e-6))
    if above.any():
        parts.append(_fit_isotonic(margin[above], target[above], 0.5 + 1e-6, 1.0))
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


# Thresholds -----------------------------------------------------------------------------------------------


def tune_thresholds(
    proba: FloatArray, targets: BoolArray, *, min_positives: int = 5, default: float = 0.5
) -> FloatArray:
    """Per-label thresholds on calibrated probabilities that maximize each label's F1 on held-out rows.

    The threshold sits halfway between the lowest accepted and the highest rejected probability, so it does
    not hug one validation example. A label with fewer than `min_positives` positives (or whose best F1 is
    0) gets `default`: with a calibrated probability, 0.5 means "more likely than not", the safest guess
    when there is too little evidence to tune.
    """
    return np.array(
        [_best_threshold(proba[:, k], targets[:, k], min_positives, default) for k in range(proba.shape[1])],
        dtype=np.float64,
    )


def _best_threshold(p: FloatArray, y: BoolArray, min_positives: int, default: float) -> float:
    positives = int(y.sum())
    if positives < min_positives:
        return default
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    true_pos = np.cumsum(y[order])
    f1 = 2.0 * true_pos / (positives + np.arange(1, len(p) + 1))
    # Only cut between distinct probabilities: equal probabilities are always on the same side.
    cut_ok = np.append(ranked[:-1] > ranked[1:], True)
    f1 = np.where(cut_ok, f1, -1.0)
    i = int(np.argmax(f1))
    if f1[i] <= 0.0:
        return default
    if i + 1 < len(ranked):
        return float((ranked[i] + ranked[i + 1]) / 2.0)
    return float(ranked[i])


# Helpers ------------------------------------------------------------------------------------------------


def _sigmoid(z: FloatArray) -> FloatArray:
    # tanh form is overflow-free for large |z| and exact enough for probabilities.
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _softmax(z: FloatArray) -> FloatArray:
    shifted = np.exp(z - z.max(axis=1, keepdims=True))
    out: FloatArray = shifted / shifted.sum(axis=1, keepdims=True)
    return out


def _normalize_rows(proba: FloatArray) -> FloatArray:
    total = proba.sum(axis=1, keepdims=True)
    # A row with no mass (every per-column map at 0) carries no information: spread it evenly.
    k = proba.shape[1]
    safe = np.where(total > 0.0, proba / np.where(total > 0.0, total, 1.0), 1.0 / max(k, 1))
    out: FloatArray = safe
    return out
