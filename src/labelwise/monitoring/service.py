"""What the API calls after each classification: metrics, the prediction log and shadow scoring.

Shadow scoring: when a model has a `shadow` alias, the texts of a sample of requests (`shadow_sample`) are scored
again by that version after the response is sent (a background task), and whether its decision agrees with the
one returned is counted (`labelwise_shadow_predictions_total{agree}` and `shadow_agreement()`). The response never
depends on it: the shadow runs on its own batcher and its failures are logged, never raised.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from labelwise.domain import ModelVersion, Prediction, Timing
from labelwise.errors import LabelwiseError
from labelwise.inference.manager import ModelManager
from labelwise.monitoring.drift import DriftService
from labelwise.monitoring.feedback import FeedbackService
from labelwise.monitoring.metrics import SHADOW_AGREEMENT, observe_classification
from labelwise.monitoring.predictions import PredictionLog
from labelwise.periodic import Periodic

logger = logging.getLogger(__name__)

SHADOW_ALIAS = "shadow"
DRIFT_REFRESH_SECONDS = 60.0


class Answered(Protocol):
    """What monitoring reads of an answered classification (the services' `Classification` is one): monitoring
    sits below the services, so it names the fields it needs instead of importing their type."""

    @property
    def predictions(self) -> list[Prediction]: ...

    @property
    def model(self) -> ModelVersion: ...

    @property
    def timing(self) -> Timing: ...


@dataclass(slots=True)
class ShadowTally:
    agree: int = 0
    total: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agree / self.total if self.total else None


@dataclass(slots=True)
class Monitoring:
    """The monitoring side of an app: built by the composition root (`bootstrap.Container.monitoring`)."""

    manager: ModelManager
    log: PredictionLog
    feedback: FeedbackService
    drift: DriftService
    shadow_enabled: bool = True
    shadow_sample: float = 1.0
    drift_refresh_seconds: float = DRIFT_REFRESH_SECONDS
    shadow: dict[tuple[str, str, str], ShadowTally] = field(default_factory=dict)
    _cache_hits: int = 0
    _drift_refresh: Periodic | None = None

    def start(self) -> None:
        """Start the prediction log's flush and the drift gauge's refresh (inside the running event loop)."""
        self.log.start()
        if self._drift_refresh is None:
            self._drift_refresh = Periodic(
                self.drift.refresh,
                self.drift_refresh_seconds,
                name="labelwise-drift",
                failure="drift refresh failed; will retry",
            )
        self._drift_refresh.start()

    async def stop(self) -> None:
        if self._drift_refresh is not None:
            await self._drift_refresh.stop()
        await self.log.stop()

    def observe(self, request_id: str, key_prefix: str | None, texts: Sequence[str], result: Answered) -> None:
        """Metrics and the prediction log for one answered classification (no I/O)."""
        hits = self.manager.cache.hits
        cached, self._cache_hits = max(0, hits - self._cache_hits), hits
        observe_classification(
            result.model.name,
            result.predictions,
            queue_ms=result.timing.queue_ms,
            inference_ms=result.timing.inference_ms,
            cached=cached,
        )
        self.log.record(request_id, key_prefix, result.model.name, result.model.version, texts, result.predictions)

    def wants_shadow(self, result: Answered) -> bool:
        """True when `result`'s model has a shadow version other than the one that answered."""
        # A sample, not every request: the shadow's inference runs on the same cores as live traffic.
        if not self.shadow_enabled or random.random() >= self.shadow_sample:
            return False
        versions = self.manager.models().get(result.model.name, [])
        target = next((v for v in versions if SHADOW_ALIAS in v.aliases), None)
        return target is not None and target.version != result.model.version

    async def score_shadow(self, texts: Sequence[str], result: Answered) -> None:
        """Score `texts` with the shadow version and count agreement with `result` (run after the response)."""
        name = result.model.name
        try:
            loaded = await self.manager.get(f"{name}@{SHADOW_ALIAS}")
            proba, _ = await loaded.predict_proba(texts)
            decided = loaded.engine.decide(proba)
        except (LabelwiseError, RuntimeError, ValueError):
            logger.warning("shadow scoring failed", exc_info=True, extra={"model": name})
            return
        tally = self.shadow.setdefault((name, result.model.version, loaded.record.version), ShadowTally())
        for shadow_labels, prediction in zip(decided, result.predictions, strict=True):
            agree = sorted(shadow_labels) == sorted(prediction.predicted)
            tally.total += 1
            tally.agree += agree
            SHADOW_AGREEMENT.labels(name, "true" if agree else "false").inc()

    def shadow_agreement(self) -> dict[str, dict[str, object]]:
        """Per `name:production->shadow` pair: texts compared and the share agreed, in this process."""
        return {
            f"{name}:{prod}->{shadow}": {"compared": t.total, "agreement": t.agreement}
            for (name, prod, shadow), t in sorted(self.shadow.items())
        }
