"""Coalesces concurrent requests for one model version into single engine calls.

Engines score many texts in one call far more cheaply than one call per text (the vectorizer and the matrix
product have a fixed cost), so requests that arrive together share a call. The rules:

- An idle engine starts at once: the first request is never held back waiting for company. Requests that reach
  `submit` in the same event-loop turn still share its call, because the call starts on the next turn.
- Requests that arrive while a call is running wait for it and then go together, up to `max_size` texts per call
  (a single request larger than that runs alone, unsplit, so each request sees exactly one call).
- Only when requests had to wait behind a running call (the engine is busy, so waiting costs little), the next
  call may linger up to `max_wait_ms` while more requests keep arriving.
- At most `queue_max` texts wait; beyond that `submit` raises `Overloaded` at once, so clients back off instead
  of piling up behind a queue they cannot see.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from labelwise.domain import Timing
from labelwise.engines.base import FloatArray
from labelwise.errors import Overloaded

logger = logging.getLogger(__name__)

PredictFn = Callable[[Sequence[str]], FloatArray]


@dataclass(slots=True)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[tuple[FloatArray, Timing]]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Runs `predict` over coalesced batches; inline on the event loop, or in `executor` when one is given."""

    def __init__(
        self,
        predict: PredictFn,
        *,
        name: str,
        max_size: int,
        max_wait_ms: float,
        queue_max: int,
        executor: Executor | None = None,
    ) -> None:
        self.predict = predict
        self.name = name
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000.0
        self.queue_max = queue_max
        self.executor = executor
        self._pending: deque[_Job] = deque()
        self._queued_texts = 0
        self._drainer: asyncio.Task[None] | None = None
        self.calls = 0  # engine calls made; read by tests and metrics

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    async def submit(self, texts: Sequence[str]) -> tuple[FloatArray, Timing]:
        """Scores for `texts` (one row each) and how long they waited and ran; `Overloaded` if the queue is full."""
        if self._queued_texts and self._queued_texts + len(texts) > self.queue_max:
            raise Overloaded(
                f"model {self.name} is busy: {self._queued_texts:,} texts are queued, the limit is "
                f"{self.queue_max:,}; retry shortly"
            )
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future())
        self._pending.append(job)
        self._queued_texts += len(texts)
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await job.future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await self._run(self._take())
                if self._pending:  # these arrived while the engine was busy
                    await self._linger()
        finally:
            self._drainer = None

    async def _linger(self) -> None:
        # Only reached when the engine was busy; stop as soon as a turn of the loop brings nobody new.
        deadline = self._pending[0].enqueued + self.max_wait
        while self._queued_texts < self.max_size and time.perf_counter() < deadline:
            before = self._queued_texts
            await asyncio.sleep(0)
            if self._queued_texts == before:
                return

    def _take(self) -> list[_Job]:
        jobs = [self._pending.popleft()]
        size = len(jobs[0].texts)
        while self._pending and size + len(self._pending[0].texts) <= self.max_size:
            job = self._pending.popleft()
            jobs.append(job)
            size += len(job.texts)
        self._queued_texts -= size
        return jobs

    async def _run(self, jobs: list[_Job]) -> None:
        texts = jobs[0].texts if len(jobs) == 1 else [t for job in jobs for t in job.texts]
        started = time.perf_counter()
        try:
            if self.executor is None:
                proba = self.predict(texts)
            else:
                proba = await asyncio.get_running_loop().run_in_executor(self.executor, self.predict, texts)
        except Exception as exc:
            # Every waiter gets the failure; the API answers each with a 500 and logs it once per request.
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self.calls += 1
        inference_ms = (time.perf_counter() - started) * 1000.0
        offset = 0
        for job in jobs:
            rows = proba[offset : offset + len(job.texts)]
            offset += len(job.texts)
            if not job.future.done():  # a waiter that gave up (client gone) has a cancelled future
                job.future.set_result((rows, Timing((started - job.enqueued) * 1000.0, inference_ms)))
