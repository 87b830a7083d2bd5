"""PSI, windows and baselines."""

from __future__ import annotations

import math

import pytest

from labelwise.errors import InvalidRequest
from labelwise.monitoring.drift import LOW_CONFIDENCE, baseline_from_split, parse_window, psi, status_of


def test_psi_is_zero_for_equal_distributions_and_grows_with_change() -> None:
    base = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert psi(base, base) == 0.0
    small = psi(base, {"a": 0.45, "b": 0.35, "c": 0.2})
    large = psi(base, {"a": 0.1, "b": 0.1, "c": 0.8})
    assert 0 < small < 0.1 < 0.25 < large
    expected = (0.45 - 0.5) * math.log(0.45 / 0.5) + (0.35 - 0.3) * math.log(0.35 / 0.3)
    assert small == pytest.approx(expected)
    assert math.isfinite(psi(base, {"d": 1.0}))  # a label never seen in validation


def test_status_thresholds() -> None:
    assert [status_of(v) for v in (None, 0.05, 0.2, 0.3)] == ["no_data", "stable", "moderate", "large"]


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("24h", 86400), ("7d", 604800), ("45s", 45)])
def test_windows(text: str, seconds: int) -> None:
    assert parse_window(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "0h", "91d", "1w", "-1h"])
def test_bad_windows(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_window(text)


def test_baseline_from_report_split() -> None:
    split = {
        "confusion_matrix": {"labels": ["a", "b"], "matrix": [[8, 2], [0, 10]]},
        "reliability": {
            "bins": [
                {"lo": 0.0, "hi": 0.4, "count": 5, "confidence": 0.3, "accuracy": 0.2},
                {"lo": 0.4, "hi": LOW_CONFIDENCE, "count": 5, "confidence": 0.45, "accuracy": 0.4},
                {"lo": 0.9, "hi": 1.0, "count": 10, "confidence": 0.95, "accuracy": 0.9},
            ]
        },
    }
    baseline = baseline_from_split(split)
    # Predicted labels are the columns: a was predicted 8 times, b 12 times.
    assert baseline.distribution == {"a": 0.4, "b": 0.6}
    assert baseline.mean_confidence == pytest.approx((5 * 0.3 + 5 * 0.45 + 10 * 0.95) / 20)
    assert baseline.low_confidence_share == 0.5
    assert baseline_from_split({}).distribution == {}
