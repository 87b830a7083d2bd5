"""Calibrators recover known distortions; selection is cross-fitted; thresholds maximize F1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelwise.domain import TaskType
from labelwise.engines.calibration import (
    IsotonicCalibrator,
    SigmoidCalibrator,
    TemperatureCalibrator,
    calibrator_from_dict,
    expected_calibration_error,
    fit_calibrator,
    select_calibrator,
    tune_thresholds,
)

SINGLE = TaskType.SINGLE_LABEL
MULTI = TaskType.MULTI_LABEL


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _single_label_sample(n: int, seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores `scale` times the true logits: labels are drawn from softmax(logits)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, 4))
    p = _softmax(logits)
    gold = np.array([rng.choice(4, p=row) for row in p])
    return logits * scale, np.eye(4, dtype=bool)[gold]


def _multi_label_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each label has its own offset between score and true logit: one temperature cannot fix that."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(-1.0, 2.0, size=(n, 3))
    targets = rng.random((n, 3)) < 1 / (1 + np.exp(-logits))
    return logits + np.array([-3.0, 0.0, 3.0]), targets


def _top1_ece(proba: np.ndarray, targets: np.ndarray) -> float:
    top = proba.argmax(axis=1)
    return expected_calibration_error(proba.max(axis=1), targets[np.arange(len(top)), top])


def test_temperature_recovers_the_distortion() -> None:
    scores, targets = _single_label_sample(4000, 0, scale=3.0)
    calibrator = fit_calibrator("temperature", scores, targets, SINGLE)
    assert isinstance(calibrator, TemperatureCalibrator)
    assert calibrator.temperature == pytest.approx(3.0, rel=0.1)


def test_temperature_keeps_the_argmax_and_fixes_overconfidence() -> None:
    scores, targets = _single_label_sample(3000, 1, scale=3.0)
    fresh_scores, fresh_targets = _single_label_sample(3000, 2, scale=3.0)
    calibrator = fit_calibrator("temperature", scores, targets, SINGLE)
    proba = calibrator.transform(fresh_scores)
    np.testing.assert_array_equal(proba.argmax(axis=1), fresh_scores.argmax(axis=1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert _top1_ece(proba, fresh_targets) < 0.03 < _top1_ece(_softmax(fresh_scores), fresh_targets)


def test_sigmoid_recovers_per_label_offsets() -> None:
    scores, targets = _multi_label_sample(6000, 3)
    calibrator = fit_calibrator("sigmoid", scores, targets, MULTI)
    assert isinstance(calibrator, SigmoidCalibrator)
    np.testing.assert_allclose(calibrator.slopes, 1.0, atol=0.15)
    np.testing.assert_allclose(calibrator.offsets, [3.0, 0.0, -3.0], atol=0.3)


def test_isotonic_is_monotone_and_bounded() -> None:
    scores, targets = _multi_label_sample(2000, 4)
    calibrator = fit_calibrator("isotonic", scores, targets, MULTI)
    assert isinstance(calibrator, IsotonicCalibrator)
    grid = np.tile(np.linspace(-12, 12, 200)[:, None], (1, 3))
    proba = calibrator.transform(grid)
    assert np.all((proba >= 0) & (proba <= 1))
    assert np.all(np.diff(proba, axis=0) >= 0)


def test_isotonic_matches_per_column_interpolation() -> None:
    scores, targets = _multi_label_sample(1000, 11)
    calibrator = fit_calibrator("isotonic", scores, targets, MULTI)
    assert isinstance(calibrator, IsotonicCalibrator)
    probe = np.random.default_rng(12).normal(0, 6, size=(300, 3))  # inside and outside the knot ranges
    expected = np.column_stack([np.interp(probe[:, k], calibrator.knots_x[k], calibrator.knots_y[k]) for k in range(3)])
    np.testing.assert_allclose(calibrator.transform(probe), expected, atol=1e-9)


@pytest.mark.parametrize("method", ["temperature", "sigmoid", "isotonic"])
@pytest.mark.parametrize("task", [SINGLE, MULTI])
def test_state_round_trips_through_json(method: str, task: TaskType) -> None:
    scores, targets = _single_label_sample(300, 5, scale=2.0)
    calibrator = fit_calibrator(method, scores, targets, task)
    rebuilt = calibrator_from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert rebuilt.method == method
    assert rebuilt.task is task
    np.testing.assert_array_equal(rebuilt.transform(scores), calibrator.transform(scores))


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_single_label_per_column_methods_normalize_rows(method: str) -> None:
    scores, targets = _single_label_sample(500, 6, scale=2.0)
    proba = fit_calibrator(method, scores, targets, SINGLE).transform(scores)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _binary_capped_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two-label scores whose confidence saturates: the true log-odds grow with the margin up to 2, then fast.

    This is the shape a fine-tuned transformer showed on sst2 (confident rows under-confident, the middle
    over-confident): no single temperature fits both ends.
    """
    rng = np.random.default_rng(seed)
    margin = rng.normal(0, 2.0, size=n)
    log_odds = np.where(np.abs(margin) < 2.0, 0.4 * margin, np.sign(margin) * (0.8 + 3.0 * (np.abs(margin) - 2.0)))
    second = rng.random(n) < 1 / (1 + np.exp(-log_odds))
    scores = np.column_stack([-margin / 2, margin / 2]) + rng.normal(0, 1.0, size=(n, 1))  # a shared offset
    return scores, np.eye(2, dtype=bool)[second.astype(int)]


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_two_labels_are_calibrated_on_their_margin(method: str) -> None:
    scores, targets = _binary_capped_sample(3000, 21)
    calibrator = fit_calibrator(method, scores, targets, SINGLE)
    assert calibrator.binary
    rebuilt = calibrator_from_dict(json.loads(json.dumps(calibrator.to_dict())))
    assert rebuilt.binary
    probe, _ = _binary_capped_sample(500, 22)
    proba = rebuilt.transform(probe)
    np.testing.assert_array_equal(proba, calibrator.transform(probe))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # One monotone map of the margin: a larger margin never gets a smaller probability of the second label,
    # whatever the offset both scores share.
    order = np.argsort(probe[:, 1] - probe[:, 0])
    assert np.all(np.diff(proba[order, 1]) >= -1e-12)


def test_two_labels_with_a_saturating_shape_choose_isotonic_over_temperature() -> None:
    scores, targets = _binary_capped_sample(3000, 23)
    fresh_scores, fresh_targets = _binary_capped_sample(20000, 24)
    selection = select_calibrator(scores, targets, SINGLE)
    assert selection.calibrator.method == "isotonic"
    temperature = fit_calibrator("temperature", scores, targets, SINGLE)
    chosen_ece = _top1_ece(selection.calibrator.transform(fresh_scores), fresh_targets)
    assert chosen_ece < 0.02 < _top1_ece(temperature.transform(fresh_scores), fresh_targets)


def test_unknown_method_is_rejected() -> None:
    scores, targets = _single_label_sample(50, 7, scale=1.0)
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit_calibrator("magic", scores, targets, SINGLE)
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibrator_from_dict({"method": "magic", "task": "single_label"})


def test_selection_rejects_temperature_when_labels_are_offset() -> None:
    scores, targets = _multi_label_sample(3000, 8)
    selection = select_calibrator(scores, targets, MULTI)
    assert set(selection.ece) == {"temperature", "sigmoid", "isotonic"}
    assert selection.calibrator.method != "temperature"
    assert selection.ece[selection.calibrator.method] == min(selection.ece.values())
    assert selection.ece["temperature"] > 2 * selection.ece[selection.calibrator.method]


def test_selection_is_cross_fitted() -> None:
    # Pure noise: isotonic fitted and scored on the same rows would look well calibrated; cross-fitted, it
    # must not look better than it is on fresh rows.
    rng = np.random.default_rng(9)
    scores = rng.normal(size=(400, 2))
    targets = np.eye(2, dtype=bool)[rng.integers(0, 2, size=400)]
    selection = select_calibrator(scores, targets, SINGLE, methods=("temperature", "isotonic"))
    in_sample = fit_calibrator("isotonic", scores, targets, SINGLE).transform(scores)
    assert selection.ece["isotonic"] > _top1_ece(in_sample, targets)


def test_small_validation_falls_back_to_temperature() -> None:
    scores, targets = _single_label_sample(20, 10, scale=2.0)
    selection = select_calibrator(scores, targets, SINGLE)
    assert selection.calibrator.method == "temperature"
    assert "fewer than" in selection.reason


def test_thresholds_maximize_f1_by_hand() -> None:
    proba = np.array([[0.9], [0.8], [0.3], [0.2], [0.1]])
    targets = np.array([[1], [1], [0], [1], [0]], dtype=bool)
    # Cutting after the 4th row: tp 3 of 4 predicted, 3 positives -> F1 6/7, the best; halfway to 0.1.
    np.testing.assert_allclose(tune_thresholds(proba, targets, min_positives=1), [0.15])


def test_thresholds_never_split_equal_probabilities() -> None:
    proba = np.array([[0.9], [0.5], [0.5], [0.1]])
    targets = np.array([[1], [1], [0], [0]], dtype=bool)
    # Cutting between the two 0.5s would score F1 1.0 on paper, but no threshold can do that; the best real
    # cut takes both (F1 0.8) and sits halfway to 0.1.
    np.testing.assert_allclose(tune_thresholds(proba, targets, min_positives=1), [0.3])


def test_rare_labels_fall_back_to_the_default() -> None:
    proba = np.array([[0.9, 0.9], [0.2, 0.2], [0.1, 0.1]])
    targets = np.array([[1, 1], [0, 0], [0, 0]], dtype=bool)
    np.testing.assert_allclose(tune_thresholds(proba, targets, min_positives=2, default=0.5), [0.5, 0.5])
    no_positive = np.zeros((3, 1), dtype=bool)
    np.testing.assert_allclose(tune_thresholds(proba[:, :1], no_positive, min_positives=0), [0.5])
