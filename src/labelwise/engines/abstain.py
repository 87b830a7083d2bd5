"""The abstain rule: when a model's best label is not sure enough to act on, it decides nothing.

A rule has two numbers, the fallback rule of dialogue systems' intent classifiers: the best label's calibrated
score must reach `min_confidence`, and it must lead the second best by at least `min_margin`. A row failing either
is abstained on: its decision is empty, its ranked scores are kept.

`tune` chooses the two numbers on a validation split for a target precision of the decisions kept: among a grid of
candidate pairs (quantiles of the validation rows' confidences and margins), the one that keeps the most rows
while its kept rows reach the target precision. When no pair reaches the target, the pair with the best precision
that still keeps at least `MIN_COVERAGE` of the rows is chosen, and the report says the target was missed.
The rule is tuned once, for every engine, by the training pipeline; a model version carries it in its metrics
(`metrics["abstain"]`), so a version trained before the rule existed has none and never abstains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelwise.errors import InvalidRequest

DEFAULT_TARGET_PRECISION = 0.95
# A rule that keeps fewer rows than this is useless however precise: the fallback when no pair reaches the target.
MIN_COVERAGE = 0.05
_GRID = 41  # candidate values per number (quantiles of the validation rows), so at most 41 x 41 pairs


@dataclass(frozen=True, slots=True)
class AbstainRule:
    """Abstain unless the best score reaches `min_confidence` and leads the second by `min_margin`."""

    min_confidence: float = 0.0
    min_margin: float = 0.0

    @property
    def never(self) -> bool:
        """True for the rule that keeps every decision (both numbers zero)."""
        return self.min_confidence <= 0.0 and self.min_margin <= 0.0

    def fires(self, proba: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Per row of `proba` (one column per label), whether the model abstains on it."""
        if self.never or proba.shape[0] == 0:
            return np.zeros(proba.shape[0], dtype=np.bool_)
        best, margin = top_two(proba)
        return (best < self.min_confidence) | (margin < self.min_margin)

    def with_overrides(self, min_confidence: float | None, min_margin: float | None) -> AbstainRule:
        """This rule with the numbers a request gave in place of its own."""
        return AbstainRule(
            self.min_confidence if min_confidence is None else min_confidence,
            self.min_margin if min_margin is None else min_margin,
        )

    def as_dict(self) -> dict[str, float]:
        return {"min_confidence": self.min_confidence, "min_margin": self.min_margin}


NEVER = AbstainRule()


def top_two(proba: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per row, the best score and its lead over the second best (the best score itself for one column)."""
    if proba.shape[1] == 1:
        return proba[:, 0], proba[:, 0]
    two = -np.partition(-proba, 1, axis=1)[:, :2]
    return two[:, 0], two[:, 0] - two[:, 1]


def rule_of(metrics: Mapping[str, Any]) -> AbstainRule:
    """The rule recorded in a version's metrics; `NEVER` for a version trained before rules existed."""
    found = metrics.get("abstain")
    if not isinstance(found, Mapping) or "min_confidence" not in found:
        return NEVER
    return AbstainRule(float(found["min_confidence"]), float(found.get("min_margin", 0.0)))


def check_target(target_precision: float, *, param: str = "target_precision") -> None:
    """`InvalidRequest` naming `param` unless the target is a precision strictly between 0 and 1."""
    if not (0.0 < target_precision < 1.0) or math.isnan(target_precision):
        raise InvalidRequest(f"{param}: {target_precision} is not between 0 and 1 (exclusive)", param=param)


def tune(
    proba: NDArray[np.float64], gold: Sequence[int], *, target_precision: float = DEFAULT_TARGET_PRECISION
) -> dict[str, Any]:
    """The rule for `target_precision` on a validation split, with what it keeps and the precision/coverage curve.

    `gold` is each row's correct column. Returns a JSON-able record: `min_confidence`, `min_margin`,
    `target_precision`, `reached` (whether the kept rows reach the target), `precision` and `coverage` of the rule
    on these rows, `precision_all` (no rule), `n`, and `curve`: precision against coverage as `min_confidence` alone
    sweeps the rows' confidences (what the report plots).
    """
    check_target(target_precision)
    n = proba.shape[0]
    if n == 0:
        return {**NEVER.as_dict(), "target_precision": target_precision, "reached": False, "n": 0, "curve": []}
    best, margin = top_two(proba)
    correct = np.argmax(proba, axis=1) == np.asarray(gold, dtype=np.intp)
    conf_grid = np.unique(np.concatenate([[0.0], np.quantile(best, np.linspace(0.0, 0.98, _GRID))]))
    margin_grid = np.unique(np.concatenate([[0.0], np.quantile(margin, np.linspace(0.0, 0.98, _GRID))]))
    # kept[i, j, row]: row kept by (conf_grid[i], margin_grid[j]); counted without materializing the cube.
    conf_ok = best[np.newaxis, :] >= conf_grid[:, np.newaxis]  # (C, n)
    margin_ok = margin[np.newaxis, :] >= margin_grid[:, np.newaxis]  # (M, n)
    kept = conf_ok.astype(np.float64) @ margin_ok.T.astype(np.float64)  # (C, M)
    right = (conf_ok & correct).astype(np.float64) @ margin_ok.T.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(kept > 0, right / kept, 0.0)
    coverage = kept / n
    reached = precision >= target_precision
    # Reached: the most rows kept (among equals argmax takes the loosest rule, the smallest numbers). Else the
    # most precise rule that still keeps a useful share.
    score = np.where(reached, coverage, -1.0) if reached.any() else np.where(coverage >= MIN_COVERAGE, precision, -1.0)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    rule = AbstainRule(round(float(conf_grid[i]), 6), round(float(margin_grid[j]), 6))
    return {
        **rule.as_dict(),
        "target_precision": target_precision,
        "reached": bool(reached.any()),
        "precision": round(float(precision[i, j]), 4),
        "coverage": round(float(coverage[i, j]), 4),
        "precision_all": round(float(correct.mean()), 4),
        "n": n,
        "curve": _curve(best, correct),
    }


def _curve(best: NDArray[np.float64], correct: NDArray[np.bool_], points: int = 50) -> list[dict[str, float]]:
    """Precision of the kept rows against the share kept, keeping the rows most confident first."""
    order = np.argsort(-best, kind="stable")
    hits = np.cumsum(correct[order])
    kept = np.arange(1, len(order) + 1)
    take = np.unique(np.linspace(0, len(order) - 1, min(points, len(order))).round().astype(np.intp))
    return [
        {
            "coverage": round(float(kept[k] / len(order)), 4),
            "precision": round(float(hits[k] / kept[k]), 4),
            "min_confidence": round(float(best[order[k]]), 6),
        }
        for k in take
    ]
