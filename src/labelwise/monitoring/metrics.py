"""Prometheus metrics of a Labelwise process, safe under several workers.

With several workers, `api/server.py` points `PROMETHEUS_MULTIPROC_DIR` at a fresh directory before any worker
starts; prometheus-client then keeps each worker's values in memory-mapped files there, and `render()` merges every
worker's files with a `MultiProcessCollector`, so one scrape of any worker sees the whole server. Without the
variable, the process's own default registry is rendered.

The metric objects are module globals on purpose: Prometheus registries refuse a second metric of the same name,
and every app instance of one process (tests build many) must count into the same series.
"""

from __future__ import annotations

import functools
import os
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import REGISTRY, Collector

from labelwise.domain import Prediction

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_MS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000)

REQUESTS = Counter("labelwise_requests_total", "HTTP requests answered.", ["route", "status", "model", "version"])
REQUEST_MS = Histogram(
    "labelwise_request_duration_ms", "Time in the server per request, milliseconds.", ["route"], buckets=_MS_BUCKETS
)
QUEUE_MS = Histogram(
    "labelwise_queue_ms", "Time a request waited for its engine call, milliseconds.", ["model"], buckets=_MS_BUCKETS
)
INFERENCE_MS = Histogram(
    "labelwise_inference_ms",
    "Duration of the engine call a request rode on, milliseconds.",
    ["model"],
    buckets=_MS_BUCKETS,
)
BATCH_TEXTS = Histogram(
    "labelwise_request_texts",
    "Texts per classify request.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
CACHE_HITS = Counter("labelwise_cache_hits_total", "Texts answered from the prediction cache.")
PREDICTIONS = Counter("labelwise_predictions_total", "Texts by predicted label.", ["model", "label"])
CONFIDENCE = Histogram(
    "labelwise_confidence",
    "Best label's score per text.",
    ["model"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
PREDICTION_LOG_SKIPPED = Counter(
    "labelwise_prediction_log_skipped_total",
    "Texts answered but not written to the prediction log: the worker's cap per second was reached.",
)
BUFFER_DROPPED = Counter(
    "labelwise_buffer_dropped_total",
    "Rows refused by a full write buffer (the database away for long), by buffer: usage or prediction_log.",
    ["buffer"],
)
REJECTIONS = Counter("labelwise_rejections_total", "Requests refused for rate (429) or credits (402).", ["reason"])
SHADOW_AGREEMENT = Counter(
    "labelwise_shadow_predictions_total", "Texts scored by a shadow version, by agreement.", ["model", "agree"]
)
JOB_PROGRESS = Gauge(
    "labelwise_job_progress",
    "Fraction done of a running job, in [0, 1].",
    ["job", "kind"],
    multiprocess_mode="mostrecent",
)

_REJECTED = {429: "rate_limit", 402: "credits"}


@functools.lru_cache(maxsize=4096)
def _child(metric: MetricWrapperBase, *labels: str) -> Any:
    """`metric.labels(*labels)`, kept: `labels()` takes a lock and builds a key on every call (several per
    request). A child stays valid until removed, and only job progress (not read through here) is removed."""
    return metric.labels(*labels)


def observe_request(route: str, status: int, model: str, version: str, duration_ms: float) -> None:
    """Count one answered request; a 429 or 402 also counts as a rejection."""
    _child(REQUESTS, route, str(status), model, version).inc()
    _child(REQUEST_MS, route).observe(duration_ms)
    reason = _REJECTED.get(status)
    if reason is not None:
        REJECTIONS.labels(reason).inc()


def observe_classification(
    model: str, predictions: Sequence[Prediction], *, queue_ms: float, inference_ms: float, cached: int
) -> None:
    """Timing, size, cache hits, predicted labels and confidence of one classify call."""
    _child(QUEUE_MS, model).observe(queue_ms)
    _child(INFERENCE_MS, model).observe(inference_ms)
    _child(BATCH_TEXTS, model).observe(len(predictions))
    if cached:
        CACHE_HITS.inc(cached)
    for label, count in Tally(label for p in predictions for label in p.predicted).items():
        _child(PREDICTIONS, model, label).inc(count)
    confidences = [p.labels[0].score if p.labels else 0.0 for p in predictions]
    observe_many(_child(CONFIDENCE, model), confidences)


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """`histogram.observe(a)` for every amount, with one increment per bucket instead of one per amount.

    prometheus-client has no bulk observe, and in multi-worker mode each increment takes a lock and writes a
    memory-mapped file: per text of a 64-text batch that was about 2 us. This reads the child's `_upper_bounds`,
    `_buckets` and `_sum` (prometheus-client 0.26); if they are not there it falls back to `observe`, and a
    test holds the result equal to observing one by one.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(amounts) < 4:
        for amount in amounts:
            histogram.observe(amount)
        return
    # Each amount counts in the first bucket whose upper bound is at or above it (`le`), as `observe` does.
    counts = np.bincount(np.searchsorted(bounds, amounts, side="left"), minlength=len(bounds))
    for bucket, count in zip(buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
    total.inc(float(sum(amounts)))


def set_job_progress(job: str, kind: str, fraction: float) -> None:
    """Report a job's progress in [0, 1] (for the batch-jobs engine); `clear_job_progress` when it ends."""
    JOB_PROGRESS.labels(job, kind).set(min(1.0, max(0.0, fraction)))


def clear_job_progress(job: str, kind: str) -> None:
    """Drop a finished job's series (in multi-worker mode the last value stays until the server restarts)."""
    try:
        JOB_PROGRESS.remove(job, kind)
    except KeyError:
        return


class GaugeCollector(Collector):
    """A gauge computed when scraped, e.g. drift, from `read()` -> {(label values): value}."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], read: Callable[[], dict[tuple[str, ...], float]]
    ):
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in sorted(self.read().items()):
            family.add_metric(list(values), value)
        yield family


def render(extra: Sequence[Collector] = ()) -> bytes:
    """The exposition text of every worker's metrics (multi-process mode) or this process's, plus `extra`."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _Forward(Collector):
    """The default registry's metrics inside a registry of our own, so per-scrape collectors can join them."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        yield from self.source.collect()
