"""The prediction log: per text, who asked, which model version answered, the text's hash and length, top labels.

Recording appends to an in-memory buffer on the event loop (no I/O on the request path); a background task writes
the buffer every `flush_seconds`, as `services/usage.py` does for usage, with the same `storage.buffer.BufferedWriter`.
A failed flush keeps the rows for the next. With the database away for long, the buffer stops at `MAX_BUFFERED_ROWS`
rows; later rows are refused, counted in `labelwise_buffer_dropped_total{buffer="prediction_log"}` and logged.

Raw text is stored only where the server (`log_raw_text`) or the key (`log_raw_text_keys`) opts in, and is blanked
after `retention` by the same background task. Sampling is by request id, so a request is logged whole or not at all,
and the same id always gets the same decision.

Each worker also writes at most `max_per_second` texts a second (`prediction_log_max_per_second`, default 100;
whole requests, counted in `labelwise_prediction_log_skipped_total` when skipped). Writing a row costs more CPU than
classifying its text with the linear engine (30-80 us against about 30 us, SQLite, banking77), so logging
everything would halve peak throughput, and at thousands of texts a second the log would grow by gigabytes a day;
drift and the review queue need a steady sample, not every row. Set 0 to log everything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta

from labelwise.domain import Prediction, share_of
from labelwise.monitoring.metrics import BUFFER_DROPPED, PREDICTION_LOG_SKIPPED
from labelwise.periodic import Periodic
from labelwise.storage.buffer import BufferedWriter
from labelwise.storage.monitoring import LoggedPrediction, PredictionLogRepository

logger = logging.getLogger(__name__)

_CLEANUP_EVERY_SECONDS = 60.0
MAX_BUFFERED_ROWS = 100_000  # beyond this (database away for long) new rows are refused, not memory exhausted


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


class PredictionLog:
    """Buffers predictions and writes them in batches; prunes raw text past its retention."""

    def __init__(
        self,
        repo: PredictionLogRepository,
        *,
        sample: float = 1.0,
        max_per_second: int = 0,
        raw_text: bool = False,
        raw_text_keys: Collection[str] = (),
        retention: timedelta = timedelta(days=30),
        flush_seconds: float = 1.0,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.sample = sample
        self.max_per_second = max_per_second
        self._clock = clock
        self._allowance = float(max_per_second)
        self._refilled = clock()
        self.raw_text = raw_text
        self.raw_text_keys = frozenset(raw_text_keys)
        self.retention = retention
        self.flush_seconds = flush_seconds
        self._now = now
        self._buffer = BufferedWriter(
            repo.add,
            name="prediction_log",
            max_rows=MAX_BUFFERED_ROWS,
            on_drop=BUFFER_DROPPED.labels("prediction_log").inc,
        )
        self._periodic = Periodic(
            self._tick,
            flush_seconds,
            name="labelwise-prediction-log",
            failure="prediction log flush failed; will retry",
            context=lambda: {"rows": self.pending},
        )
        self._next_cleanup = 0.0

    def sampled(self, request_id: str) -> bool:
        return self.sample >= 1.0 or share_of(request_id) < self.sample

    def _admit(self, texts: int) -> bool:
        """Whether the per-second cap leaves room for `texts` more rows (a request may overdraw; later ones wait)."""
        if self.max_per_second <= 0:
            return True
        now = self._clock()
        refill = (now - self._refilled) * self.max_per_second
        self._allowance = min(float(self.max_per_second), self._allowance + refill)
        self._refilled = now
        if self._allowance <= 0.0:
            PREDICTION_LOG_SKIPPED.inc(texts)
            return False
        self._allowance -= texts
        return True

    def record(
        self,
        request_id: str,
        key_prefix: str | None,
        model: str,
        version: str,
        texts: Sequence[str],
        predictions: Sequence[Prediction],
    ) -> None:
        """Buffer one request's predictions if sampled and under the cap (no I/O here)."""
        if not self.sampled(request_id) or not self._admit(len(texts)):
            return
        keep_text = self.raw_text or (key_prefix is not None and key_prefix in self.raw_text_keys)
        at = self._now()
        rows = []
        for i, (text, prediction) in enumerate(zip(texts, predictions, strict=True)):
            scores = [(s.label, s.score) for s in prediction.labels]
            best = scores[0][1] if scores else 0.0
            second = scores[1][1] if len(scores) > 1 else 0.0
            rows.append(
                LoggedPrediction(
                    request_id,
                    i,
                    at,
                    key_prefix,
                    model,
                    version,
                    text_sha256(text),
                    len(text),
                    scores,
                    list(prediction.predicted),
                    best,
                    best - second,
                    text if keep_text else None,
                )
            )
        self._buffer.add_many(rows)

    @property
    def pending(self) -> int:
        return self._buffer.pending

    async def flush(self) -> None:
        """Write the buffer now; on failure the rows go back and the error rises."""
        await self._buffer.flush()

    async def cleanup(self) -> int:
        """Blank raw texts older than the retention period; how many were blanked."""
        return await asyncio.to_thread(self.repo.forget_raw_text, self._now() - self.retention)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
        await self._buffer.close()

    async def _tick(self) -> None:
        """One round of the background loop: flush, and now and then blank raw texts past retention."""
        await self.flush()
        now = asyncio.get_running_loop().time()
        if now >= self._next_cleanup:
            self._next_cleanup = now + _CLEANUP_EVERY_SECONDS
            removed = await self.cleanup()
            if removed:
                logger.info("raw texts past retention removed", extra={"rows": removed})
