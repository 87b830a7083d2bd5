"""Training the linear models of the `linear` engine (scikit-learn's liblinear, fit time only)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import TaskType

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


def train_linear(
    x: Any, targets: BoolArray, c: float, task: TaskType, *, seed: int
) -> tuple[NDArray[np.float32], FloatArray]:
    """Weights (n_features, n_labels) as float32 and intercepts (n_labels,) of a class-weighted linear SVM.

    Single-label: one-vs-rest over all classes in one liblinear call; with two classes one binary model whose
    margin is split evenly between the two columns, so a softmax of the columns is a sigmoid of the margin.
    Multi-label: one independent binary model per label. Both use balanced class weights, so rare classes are
    not drowned by frequent ones.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    n_labels = targets.shape[1]
    with warnings.catch_warnings(record=True) as caught:
        # Not converging within max_iter barely moves the scores at these sizes; count it instead of raising.
        warnings.simplefilter("always", ConvergenceWarning)
        if task is TaskType.SINGLE_LABEL:
            model = LinearSVC(C=c, class_weight="balanced", random_state=seed)
            model.fit(x, np.argmax(targets, axis=1))
            coef = np.asarray(model.coef_, dtype=np.float64)
            intercept = np.asarray(model.intercept_, dtype=np.float64)
            if n_labels == 2:
                coef = np.vstack([-coef[0], coef[0]]) / 2.0
                intercept = np.array([-intercept[0], intercept[0]]) / 2.0
        else:
            coef = np.zeros((n_labels, x.shape[1]), dtype=np.float64)
            intercept = np.zeros(n_labels, dtype=np.float64)
            for j in range(n_labels):
                column = targets[:, j]
                if column.all() or not column.any():
                    # A label on every row (or none) has nothing to separate: a constant score says so.
                    intercept[j] = 1.0 if column.all() else -1.0
                    continue
                model = LinearSVC(C=c, class_weight="balanced", random_state=seed).fit(x, column)
                coef[j] = model.coef_[0]
                intercept[j] = model.intercept_[0]
    unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    if unconverged:
        logger.info("liblinear stopped at max_iter", extra={"models": unconverged, "C": c})
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return np.ascontiguousarray(coef.T, dtype=np.float32), intercept


def average_precision_macro(scores: FloatArray, targets: BoolArray) -> float:
    """Mean average precision over labels with at least one positive (threshold-free model quality)."""
    from sklearn.metrics import average_precision_score

    values = [
        float(average_precision_score(targets[:, j], scores[:, j]))
        for j in range(targets.shape[1])
        if targets[:, j].any()
    ]
    return float(np.mean(values)) if values else 0.0
