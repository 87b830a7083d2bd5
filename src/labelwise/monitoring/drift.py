"""Drift: how far a model's live predictions have moved from what it did on its validation data.

- The population stability index (PSI) of the predicted-label distribution in a time window against the
  predicted-label distribution on validation (the column sums of the validation confusion matrix, recorded in the
  training report). PSI = sum over labels of (live - base) x ln(live / base), shares floored at `EPSILON` so an
  unseen label counts as large but finite. Common reading: under 0.1 stable, 0.1 to 0.25 moderate, over 0.25 large.
- The mean top-1 confidence and the share of low-confidence predictions (top-1 score at or under
  `LOW_CONFIDENCE`), against the same figures on validation (from the report's reliability bins).

Only single-label models have a predicted-label distribution in their report; multi-label models report confidence.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from labelwise.domain import ModelVersion
from labelwise.errors import InvalidRequest, ModelNotFound, NotFound
from labelwise.monitoring.predictions import PredictionLog, utcnow
from labelwise.storage.monitoring import WindowSummary

logger = logging.getLogger(__name__)

EPSILON = 1e-4
# The reliability bins are fifteenths of (0, 1]; 7/15 is the last bin edge at or under one half.
LOW_CONFIDENCE = 7 / 15
PSI_MODERATE = 0.1
PSI_LARGE = 0.25
MAX_WINDOW = timedelta(days=90)
_WINDOW_RE = re.compile(r"(\d{1,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class Baseline:
    """What a version did on its validation data."""

    distribution: dict[str, float] = field(default_factory=dict)  # predicted label -> share; empty if unknown
    mean_confidence: float | None = None
    low_confidence_share: float | None = None


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Live figures for one version over a window, next to its baseline."""

    model: str
    version: str
    window_seconds: int
    since: datetime
    predictions: int
    psi: float | None
    status: str  # no_data | stable | moderate | large
    mean_confidence: float | None
    baseline_mean_confidence: float | None
    low_confidence_share: float | None
    baseline_low_confidence_share: float | None
    distribution: dict[str, float]
    baseline_distribution: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_window(text: str) -> timedelta:
    """`30m`, `24h`, `7d` ... as a timedelta; `InvalidRequest` naming `window` otherwise."""
    match = _WINDOW_RE.fullmatch(text.strip())
    if match is None:
        raise InvalidRequest(f"window: {text[:20]!r} is not a number and a unit (s, m, h, d), e.g. 24h", param="window")
    window = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not timedelta(0) < window <= MAX_WINDOW:
        raise InvalidRequest("window: must be more than 0 and at most 90d", param="window")
    return window


def baseline_from_split(metrics: Mapping[str, Any]) -> Baseline:
    """The baseline from a report's split metrics (`confusion_matrix`, `reliability`)."""
    distribution: dict[str, float] = {}
    confusion = metrics.get("confusion_matrix")
    if isinstance(confusion, Mapping) and confusion.get("labels") and confusion.get("matrix"):
        labels = [str(label) for label in confusion["labels"]]
        columns = [sum(float(row[j]) for row in confusion["matrix"]) for j in range(len(labels))]
        total = sum(columns)
        if total > 0:
            distribution = {label: count / total for label, count in zip(labels, columns, strict=True)}
    bins = metrics.get("reliability", {}).get("bins") if isinstance(metrics.get("reliability"), Mapping) else None
    mean = low = None
    if bins:
        counted = [(int(b["count"]), float(b["confidence"] or 0.0), float(b["hi"])) for b in bins]
        total_rows = sum(c for c, _, _ in counted)
        if total_rows:
            mean = sum(c * conf for c, conf, _ in counted) / total_rows
            low = sum(c for c, _, hi in counted if hi <= LOW_CONFIDENCE + 1e-9) / total_rows
    return Baseline(distribution, mean, low)


def psi(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """Population stability index of `actual` shares against `expected` shares (labels of either)."""
    total = 0.0
    for label in set(expected) | set(actual):
        e = max(expected.get(label, 0.0), EPSILON)
        a = max(actual.get(label, 0.0), EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def status_of(value: float | None) -> str:
    if value is None:
        return "no_data"
    return "large" if value > PSI_LARGE else "moderate" if value > PSI_MODERATE else "stable"


def measure(
    record: ModelVersion, baseline: Baseline, summary: WindowSummary, window: timedelta, since: datetime
) -> DriftReport:
    """The drift report of `summary` (the window's logged predictions of `record`, aggregated)."""
    counts = summary.top_labels
    n = sum(counts.values())
    live = {label: c / n for label, c in sorted(counts.items())} if n else {}
    value = psi(baseline.distribution, live) if n and baseline.distribution else None
    rows = summary.predictions
    mean = summary.confidence_sum / rows if rows else None
    low = summary.low_confidence / rows if rows else None
    return DriftReport(
        record.name,
        record.version,
        int(window.total_seconds()),
        since,
        rows,
        None if value is None else round(value, 6),
        status_of(value),
        mean,
        baseline.mean_confidence,
        low,
        baseline.low_confidence_share,
        live,
        baseline.distribution,
    )


ReportReader = Callable[[ModelVersion], Mapping[str, Any]]


class DriftService:
    """Drift of a model's production version; keeps the latest PSI per model for the `/metrics` gauge."""

    def __init__(
        self,
        models: Callable[[], Mapping[str, list[ModelVersion]]],
        log: PredictionLog,
        read_report: ReportReader,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.models = models
        self.log = log
        self.read_report = read_report
        self._now = now
        self.latest: dict[tuple[str, ...], float] = {}  # (model, version) -> PSI

    def baseline(self, record: ModelVersion) -> Baseline:
        """From the version's metrics (`baseline` recorded at training), else from its report's validation split."""
        stored = record.metrics.get("baseline")
        if isinstance(stored, Mapping):
            return Baseline(
                {str(k): float(v) for k, v in (stored.get("distribution") or {}).items()},
                stored.get("mean_confidence"),
                stored.get("low_confidence_share"),
            )
        try:
            report = self.read_report(record)
        except NotFound:
            return Baseline()
        validation = report.get("validation")
        return baseline_from_split(validation if isinstance(validation, Mapping) else {})

    def production(self, name: str) -> ModelVersion:
        versions = self.models().get(name)
        if not versions:
            raise ModelNotFound(f"name: model {name!r} not found", param="name")
        record = next((v for v in versions if "production" in v.aliases), None)
        if record is None:
            raise ModelNotFound(f"name: model {name!r} has no production version", param="name")
        return record

    async def drift(self, name: str, window: timedelta) -> DriftReport:
        """Drift of `name`'s production version over the last `window` (this process's log buffer flushed first)."""
        record = self.production(name)
        await self.log.flush()
        since = self._now() - window
        summary = await asyncio.to_thread(
            self.log.repo.window_summary, record.name, since, record.version, low_confidence=LOW_CONFIDENCE
        )
        baseline = await asyncio.to_thread(self.baseline, record)
        report = measure(record, baseline, summary, window, since)
        if report.psi is not None:
            self.latest[(record.name, record.version)] = report.psi
        return report

    async def refresh(self, window: timedelta = timedelta(hours=24)) -> None:
        """Recompute every production model's drift (for the gauge); a model that fails is logged and skipped."""
        for name in sorted(self.models()):
            try:
                await self.drift(name, window)
            except Exception:
                logger.warning("drift not computed", exc_info=True, extra={"model": name})

    def gauge(self) -> dict[tuple[str, ...], float]:
        return dict(self.latest)
