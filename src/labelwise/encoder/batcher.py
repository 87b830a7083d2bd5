"""Dynamic batching in front of the encoder, for concurrent requests in an asyncio server.

One worker task runs the encoder in one thread, a batch at a time. A request that finds it idle runs at once
(no waiting window); requests that arrive while a batch runs are queued and leave together in the next batch,
taken first come first served up to a token budget (the encoder then sorts the batch's texts by length, so
padding stays low). The queue is bounded in texts: a request that does not fit raises `Overloaded` at once,
which the API answers with 503 and Retry-After, instead of letting latency grow without bound.

The encoder's threads (this batcher's, and the encoder's own tokenize and inference threads, all named
`encoder-...`) run at a lower OS priority than the event loop (`nice`, Linux per-thread nice values): when the
encoder keeps every core busy, the loop still gets a core the moment it has work, so refusals and other quick
answers stay quick instead of queueing behind inference for CPU time (measured in bench/overload.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import Timing
from labelwise.encoder.windows import LongText
from labelwise.errors import InvalidRequest, Overloaded

logger = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """What the batcher needs from an encoder (`Encoder`, or a fake in tests)."""

    def encode(
        self, texts: Sequence[str], *, long_text: LongText = ..., batch_size: int = ...
    ) -> NDArray[np.float32]: ...


@dataclass(slots=True)
class _Request:
    texts: list[str]
    future: asyncio.Future[tuple[NDArray[np.float32], Timing]]
    tokens: int
    enqueued: float = field(default_factory=time.perf_counter)


def estimate_tokens(text: str) -> int:
    """About 4 characters per WordPiece token in English, plus [CLS] and [SEP]: cheap and good enough for a budget."""
    return len(text) // 4 + 2


class EncoderBatcher:
    """Coalesces concurrent `embed` calls into encoder batches.

    `max_queue_texts` bounds the texts waiting (beyond it, `Overloaded`), `max_batch_tokens` the estimated
    tokens of one batch (a single larger request still runs, alone), `retry_after_s` is the hint given to
    clients when the queue is full, `nice` how much lower the encoder threads' OS priority is than the event
    loop's (0: the same).
    """

    def __init__(
        self,
        encoder: TextEncoder,
        *,
        max_queue_texts: int = 2048,
        max_batch_tokens: int = 16384,
        long_text: LongText = "mean",
        retry_after_s: float = 1.0,
        nice: int = 0,
    ) -> None:
        self._encoder = encoder
        self._max_queue_texts = max_queue_texts
        self._max_batch_tokens = max_batch_tokens
        self._long_text: LongText = long_text
        self._retry_after_s = retry_after_s
        self._queue: deque[_Request] = deque()
        self._queued_texts = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = False
        self._nice = nice
        self._niced: set[int] = set()

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def check_room(self, count: int) -> None:
        """Raise `Overloaded` if `count` more texts would not fit in the queue (cheap: for admission checks)."""
        if self._queued_texts + count > self._max_queue_texts:
            raise Overloaded(
                f"the encoder queue is full ({self._queued_texts} texts waiting, the limit is "
                f"{self._max_queue_texts}); retry in {self._retry_after_s:g} s",
                retry_after=self._retry_after_s,
            )

    async def start(self) -> None:
        """Start the worker task (call from the running event loop, e.g. in the app's lifespan)."""
        if self._worker is not None:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder-batcher")
        self._stopping = False
        self._worker = asyncio.get_running_loop().create_task(self._run(self._wakeup), name="encoder-batcher")

    async def stop(self) -> None:
        """Finish the batch in flight, fail the queued requests with `Overloaded`, and stop the worker."""
        worker, self._worker = self._worker, None
        if worker is None or self._wakeup is None:
            return
        self._stopping = True
        self._wakeup.set()
        await worker
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(
                    Overloaded("the encoder is shutting down", retry_after=self._retry_after_s)
                )
        self._queued_texts = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Vectors of `texts` (len(texts), dimensions), computed in a batch with other concurrent requests."""
        vectors, _ = await self.embed_timed(texts)
        return vectors

    async def embed_timed(self, texts: Sequence[str]) -> tuple[NDArray[np.float32], Timing]:
        """Like `embed`, with the queue and inference milliseconds (for timing headers and request logs)."""
        if self._worker is None or self._wakeup is None:
            # Our wiring bug (or a request racing shutdown), not the client's: answered as unavailable.
            raise Overloaded("the encoder is not running", retry_after=self._retry_after_s)
        if not texts:
            raise InvalidRequest("input: at least one text is required", param="input")
        self.check_room(len(texts))
        future: asyncio.Future[tuple[NDArray[np.float32], Timing]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(list(texts), future, sum(estimate_tokens(t) for t in texts)))
        self._queued_texts += len(texts)
        self._wakeup.set()
        return await future

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        tokens = 0
        while self._queue and (not batch or tokens + self._queue[0].tokens <= self._max_batch_tokens):
            request = self._queue.popleft()
            self._queued_texts -= len(request.texts)
            if request.future.done():  # the caller went away (cancelled); skip its work
                continue
            batch.append(request)
            tokens += request.tokens
        return batch

    async def _run(self, wakeup: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            await wakeup.wait()
            wakeup.clear()
            while self._queue and not self._stopping:
                batch = self._take_batch()
                if batch:
                    await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Request]) -> None:
        texts = [text for request in batch for text in request.texts]
        if self._nice:
            self._lower_encoder_threads()
        started = time.perf_counter()
        try:
            vectors = await loop.run_in_executor(
                self._executor, lambda: self._encoder.encode(texts, long_text=self._long_text)
            )
        except Exception as exc:  # delivered to every waiting caller; the worker keeps serving
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            if self._nice:  # and the threads the encoder started during this batch
                self._lower_encoder_threads()
        inference_ms = (time.perf_counter() - started) * 1000.0
        logger.debug("encoder batch: %d requests, %d texts, %.1f ms", len(batch), len(texts), inference_ms)
        offset = 0
        for request in batch:
            part = vectors[offset : offset + len(request.texts)]
            offset += len(request.texts)
            if not request.future.done():
                timing = Timing((started - request.enqueued) * 1000.0, inference_ms)
                request.future.set_result((part, timing))

    def _lower_encoder_threads(self) -> None:
        """Give every `encoder-...` thread not yet seen the lower priority (threads start lazily, so each batch
        looks, before and after; a thread id reused by a new thread is not looked at again)."""
        try:
            # Relative to this (the event loop's) thread: a server started under `nice` keeps the same gap.
            target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + self._nice)
        except (OSError, AttributeError):  # no per-thread priorities here (not Unix)
            return
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None or tid in self._niced or not thread.name.startswith("encoder-"):
                continue
            self._niced.add(tid)
            try:
                os.setpriority(os.PRIO_PROCESS, tid, target)
            except OSError:  # the thread just ended: nothing to lower
                logger.debug("could not lower the priority of thread %s", thread.name)
