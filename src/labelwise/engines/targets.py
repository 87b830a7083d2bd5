"""Labeled texts as the arrays engines learn from: the label set, gold indicators, usable validation rows.

Every engine checks its training data here, so all of them refuse the same data with the same message: no rows,
a single-label row without exactly one label, too few labels for the task (2 for single-label, 1 for
multi-label), and, for engines that cannot do without it, a validation split with no usable row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, TaskType
from labelwise.errors import DataError

logger = logging.getLogger(__name__)

BoolArray = NDArray[np.bool_]


def task_of(multi_label: bool) -> TaskType:
    return TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL


def classes_of(train: LabeledTexts, task: TaskType) -> list[str]:
    """Sorted label names of the training rows; `DataError` for data no classifier can learn from."""
    if len(train) == 0:
        raise DataError("train: no rows", param="train")
    if task is TaskType.SINGLE_LABEL:
        for i, labels in enumerate(train.labels):
            if len(labels) != 1:
                raise DataError(
                    f"train row {i + 1}: a single-label row needs exactly one label, found {len(labels)}",
                    param="train",
                )
    classes = sorted({label for labels in train.labels for label in labels})
    if not classes:
        raise DataError("train: no row has a label", param="train")
    if task is TaskType.SINGLE_LABEL and len(classes) < 2:
        raise DataError(
            f"train: a single-label classifier needs at least 2 labels, found {len(classes)}", param="train"
        )
    return classes


def indicator(labels: Sequence[tuple[str, ...]], classes: list[str]) -> BoolArray:
    """Gold labels as a (rows, classes) boolean matrix; labels not in `classes` are left out."""
    position = {label: j for j, label in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)), dtype=bool)
    for i, row in enumerate(labels):
        for label in row:
            if (j := position.get(label)) is not None:
                out[i, j] = True
    return out


def validation_rows(
    validation: LabeledTexts, classes: list[str], task: TaskType, *, required: bool
) -> tuple[list[str], BoolArray]:
    """Validation texts and gold indicators; single-label rows whose label is not in train are dropped.

    `required`: the engine needs held-out rows (it has no cross-validation to fall back on), so none left is a
    `DataError`; engines that pool train and validation accept an empty split.
    """
    targets = indicator(validation.labels, classes)
    keep = np.ones(len(validation), dtype=bool)
    if task is TaskType.SINGLE_LABEL:
        keep = targets.sum(axis=1) == 1
        dropped = int((~keep).sum())
        if dropped:
            logger.warning("validation rows with labels unknown to train dropped", extra={"rows": dropped})
    texts = [t for t, k in zip(validation.texts, keep, strict=True) if k]
    if required and not texts:
        raise DataError("validation: no rows with a label seen in train", param="validation")
    return texts, targets[keep]
