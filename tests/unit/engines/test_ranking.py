"""Ranking labels for a whole batch at once gives exactly what a stable sort of each row gives."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.domain import LabelScore
from labelwise.engines.base import rank_rows, rank_scores


def reference(classes: list[str], row: np.ndarray, top_k: int | None, threshold: float) -> list[LabelScore]:
    order = sorted(range(len(row)), key=lambda j: (-row[j], j))[: len(row) if top_k is None else top_k]
    return [LabelScore(classes[j], float(row[j])) for j in order if row[j] >= threshold]


@pytest.mark.parametrize("top_k", [None, 1, 2, 3, 5, 20, 77, 100])
@pytest.mark.parametrize("threshold", [0.0, 0.02])
def test_equals_a_stable_sort_per_row_with_ties(top_k: int | None, threshold: float) -> None:
    rng = np.random.default_rng(7)
    classes = [f"label_{j}" for j in range(77)]
    proba = rng.dirichlet(np.ones(77), 200)
    # Ties everywhere: rounded scores, whole rows of equal scores, a tie exactly at the k-th place.
    proba[:50] = np.round(proba[:50], 2)
    proba[50:60] = 1.0 / 77
    proba[60:70, :6] = 0.2
    ranked = rank_rows(classes, proba, top_k=top_k, threshold=threshold)
    assert ranked == [reference(classes, row, top_k, threshold) for row in proba]
    small = [rank_rows(classes, proba[i : i + 5], top_k=top_k, threshold=threshold) for i in range(0, 200, 5)]
    assert [labels for part in small for labels in part] == ranked
    assert rank_scores(classes, proba[61], top_k=top_k, threshold=threshold) == ranked[61]


def test_empty_batch_and_no_labels() -> None:
    assert rank_rows(["a", "b"], np.zeros((0, 2)), top_k=1) == []
    assert rank_rows([], np.zeros((3, 0)), top_k=1) == [[], [], []]
