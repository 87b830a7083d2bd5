"""Evaluation metrics on examples small enough to compute by hand, and against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_score, roc_auc_score

from labelwise.domain import TaskType
from labelwise.engines.calibration import expected_calibration_error, reliability
from labelwise.errors import DataError
from labelwise.training.metrics import evaluate

SINGLE_GOLD = [("a",), ("a",), ("b",), ("b",)]
SINGLE_PROBA = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]])


def test_single_label_by_hand() -> None:
    m = evaluate(SINGLE_GOLD, SINGLE_PROBA, ["a", "b"], TaskType.SINGLE_LABEL)
    # Predictions a, b, b, b: row 2 is the only error.
    assert m["task"] == "single_label"
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_label"]["a"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert m["per_label"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert m["macro"] == pytest.approx({"precision": 5 / 6, "recall": 0.75, "f1": (2 / 3 + 0.8) / 2})
    assert m["weighted"] == pytest.approx(m["macro"])  # equal supports
    assert m["confusion_matrix"] == {"labels": ["a", "b"], "matrix": [[1, 1], [0, 2]]}
    # Every positive outscores every negative in both columns.
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["pr_auc"] == pytest.approx(1.0)
    # Confidences 0.9, 0.6, 0.8, 0.7 fall in four different bins; correct 1, 0, 1, 1.
    assert m["ece"] == pytest.approx((0.1 + 0.6 + 0.2 + 0.3) / 4)


def test_single_label_result_is_plain_json() -> None:
    m = evaluate(SINGLE_GOLD, SINGLE_PROBA, ["a", "b"], TaskType.SINGLE_LABEL)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_unknown_gold_label_counts_as_wrong() -> None:
    gold = [("a",), ("c",), ("b",)]
    proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    m = evaluate(gold, proba, ["a", "b"], TaskType.SINGLE_LABEL)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"]["labels"] == ["a", "b", "c"]
    assert m["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert m["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_label"]["a"]["precision"] == pytest.approx(0.5)


def test_labels_never_seen_nor_predicted_are_left_out_of_macro() -> None:
    proba = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]])
    m = evaluate([("a",), ("b",)], proba, ["a", "b", "z"], TaskType.SINGLE_LABEL)
    assert m["macro"]["f1"] == pytest.approx(1.0)
    assert m["per_label"]["z"]["support"] == 0


def test_single_label_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    proba = rng.dirichlet(np.ones(4), size=300)
    truth = rng.integers(0, 4, size=300)
    m = evaluate([(classes[t],) for t in truth], proba, classes, TaskType.SINGLE_LABEL)
    pred = proba.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert m["macro"]["f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    assert m["weighted"]["f1"] == pytest.approx(f1_score(truth, pred, average="weighted"))
    assert m["macro"]["precision"] == pytest.approx(precision_score(truth, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(truth, proba, multi_class="ovr", average="macro"))
    onehot = np.eye(4, dtype=bool)[truth]
    assert m["pr_auc"] == pytest.approx(average_precision_score(onehot, proba, average="macro"))


MULTI_GOLD: list[tuple[str, ...]] = [("x",), ("x", "y"), (), ("y",)]
MULTI_PROBA = np.array([[0.9, 0.2], [0.6, 0.7], [0.1, 0.4], [0.3, 0.8]])


def test_multi_label_perfect_at_default_threshold() -> None:
    m = evaluate(MULTI_GOLD, MULTI_PROBA, ["x", "y"], TaskType.MULTI_LABEL)
    assert m["task"] == "multi_label"
    assert m["micro"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1": 1.0})
    assert m["hamming_loss"] == 0.0
    assert m["subset_accuracy"] == 1.0
    assert m["per_label_confusion"] == {"x": [[2, 0], [0, 2]], "y": [[2, 0], [0, 2]]}


def test_multi_label_thresholds_by_hand() -> None:
    # A threshold of 0.95 means x is never predicted: two false negatives.
    m = evaluate(MULTI_GOLD, MULTI_PROBA, ["x", "y"], TaskType.MULTI_LABEL, thresholds=np.array([0.95, 0.5]))
    assert m["per_label"]["x"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert m["per_label"]["y"]["f1"] == pytest.approx(1.0)
    assert m["macro"]["f1"] == pytest.approx(0.5)
    assert m["micro"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})
    assert m["hamming_loss"] == pytest.approx(2 / 8)
    assert m["subset_accuracy"] == pytest.approx(0.5)
    assert m["per_label_confusion"]["x"] == [[2, 0], [2, 0]]
    # Label-level calibration: all eight probabilities against their indicators.
    assert m["ece"] == pytest.approx(expected_calibration_error(MULTI_PROBA.ravel(), [1, 0, 1, 1, 0, 0, 0, 1]))
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_multi_label_unknown_gold_label_is_a_false_negative() -> None:
    m = evaluate([("x", "new")], np.array([[0.9]]), ["x"], TaskType.MULTI_LABEL)
    assert m["micro"]["recall"] == pytest.approx(0.5)
    assert m["per_label_confusion"]["new"] == [[0, 0], [1, 0]]
    assert m["subset_accuracy"] == 0.0
    assert m["roc_auc"] is None  # one row: no label has both classes


def test_multi_label_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    truth = rng.random((200, 5)) < 0.3
    proba = np.clip(truth * 0.4 + rng.random((200, 5)) * 0.6, 0, 1)
    classes = list("abcde")
    gold = [tuple(classes[j] for j in np.flatnonzero(row)) for row in truth]
    m = evaluate(gold, proba, classes, TaskType.MULTI_LABEL)
    pred = proba >= 0.5
    assert m["micro"]["f1"] == pytest.approx(f1_score(truth, pred, average="micro"))
    assert m["macro"]["f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    assert m["weighted"]["f1"] == pytest.approx(f1_score(truth, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(truth, proba, average="macro"))


def test_ece_by_hand() -> None:
    assert expected_calibration_error([1.0, 1.0], [True, False]) == pytest.approx(0.5)
    assert expected_calibration_error([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)
    # Two bins: (0.3 vs 0/1 -> |0.5-0.3|) and (0.9 vs 1 -> 0.1), equal weight.
    assert expected_calibration_error([0.3, 0.3, 0.9, 0.9], [0, 1, 1, 1]) == pytest.approx(0.15)
    assert expected_calibration_error([], []) == 0.0


def test_ece_bin_edges_belong_to_the_lower_bin() -> None:
    # 0.2 closes bin (2/15, 3/15]; with 0.19 in the same bin the errors cancel.
    assert expected_calibration_error([0.2, 0.19], [1, 0], bins=15) == pytest.approx(abs(0.5 - 0.195))
    assert expected_calibration_error([0.0, 1.0], [0, 1], bins=15) == 0.0


def test_reliability_bins() -> None:
    bins = reliability([0.05, 0.95, 0.97], [0, 1, 0])["bins"]
    assert len(bins) == 15
    assert bins[0]["lo"] == 0.0
    assert bins[-1]["hi"] == 1.0
    assert bins[0] == {"lo": 0.0, "hi": pytest.approx(1 / 15), "count": 1, "confidence": 0.05, "accuracy": 0.0}
    assert bins[14]["count"] == 2
    assert bins[14]["accuracy"] == 0.5
    assert bins[7]["count"] == 0
    assert bins[7]["confidence"] is None
    assert bins[7]["accuracy"] is None


def test_empty_gold_is_a_data_error() -> None:
    with pytest.raises(DataError):
        evaluate([], np.zeros((0, 2)), ["a", "b"], TaskType.SINGLE_LABEL)


def test_shape_mismatch_is_a_bug_not_a_data_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate(SINGLE_GOLD, SINGLE_PROBA[:, :1], ["a", "b"], TaskType.SINGLE_LABEL)
