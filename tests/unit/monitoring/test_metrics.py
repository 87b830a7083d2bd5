"""Bulk histogram observation equals observing one amount at a time."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram

from labelwise.monitoring.metrics import observe_many


def samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    [family] = list(histogram.collect())
    found = family.samples
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in found if not s.name.endswith("_created")}


@pytest.mark.parametrize(
    "amounts",
    [
        [0.05, 0.1, 0.1000001, 0.5, 0.99, 1.0, 1.0, 0.3, 0.7, 0.2],  # on and beside bucket bounds
        [0.93] * 64,
        [1.5, 2.0, 0.0],  # above every bound (the +Inf bucket); short lists take the plain path
        [float("nan"), 0.5, 0.6, 0.7, 0.8],  # NaN counts in no bucket, and makes the sum NaN, as observe does
    ],
)
def test_observe_many_equals_observe(amounts: list[float]) -> None:
    buckets = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
    one = Histogram("one", "h", ["model"], buckets=buckets, registry=CollectorRegistry())
    many = Histogram("many", "h", ["model"], buckets=buckets, registry=CollectorRegistry())
    for amount in amounts:
        one.labels("m").observe(amount)
    observe_many(many.labels("m"), amounts)
    expected = {(name.replace("one", "many", 1), labels): v for (name, labels), v in samples(one).items()}
    got = samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == value or (math.isnan(value) and math.isnan(got[key])), key
