"""The dynamic batcher, driven with a fake encoder whose calls we can hold and count."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from labelwise.encoder.batcher import EncoderBatcher
from labelwise.encoder.windows import LongText
from labelwise.errors import Overloaded

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class HeldEncoder:
    """Encodes a text as [len(text), 1]; each call can be held until the test releases it."""

    def __init__(self, *, hold: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def encode(
        self, texts: Sequence[str], *, long_text: LongText = "mean", batch_size: int = 64
    ) -> NDArray[np.float32]:
        self.calls.append(list(texts))
        self.entered.set()
        if not self.release.wait(timeout=10):
            raise TimeoutError("test never released the encoder")
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


async def wait_for(event: threading.Event) -> None:
    """Poll a thread event from the loop with a deadline (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + 10
    while not event.is_set():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("event not set in time")
        await asyncio.sleep(0.001)


async def test_a_lone_request_runs_at_once() -> None:
    fake = HeldEncoder()
    batcher = EncoderBatcher(fake)
    await batcher.start()
    try:
        vectors = await asyncio.wait_for(batcher.embed(["abc", "de"]), timeout=5)
    finally:
        await batcher.stop()
    np.testing.assert_array_equal(vectors[:, 0], [3, 2])
    assert fake.calls == [["abc", "de"]]


async def test_concurrent_requests_are_coalesced_and_answered_in_order() -> None:
    fake = HeldEncoder(hold=True)
    batcher = EncoderBatcher(fake)
    await batcher.start()
    try:
        first = asyncio.create_task(batcher.embed(["x"]))
        await wait_for(fake.entered)  # the first batch is running; the next requests must queue
        others = [asyncio.create_task(batcher.embed(["y" * n] * n)) for n in (1, 2, 3)]
        await asyncio.sleep(0)
        while batcher.queued_texts < 6:
            await asyncio.sleep(0.001)
        fake.release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *others), timeout=5)
    finally:
        await batcher.stop()
    assert len(fake.calls) == 2  # the three queued requests went in one encoder call
    assert fake.calls[1] == ["y"] + ["yy"] * 2 + ["yyy"] * 3
    assert [r.shape[0] for r in results] == [1, 1, 2, 3]
    for n, result in zip((1, 2, 3), results[1:], strict=True):
        assert (result[:, 0] == n).all()


async def test_a_full_queue_raises_overloaded_at_once() -> None:
    fake = HeldEncoder(hold=True)
    batcher = EncoderBatcher(fake, max_queue_texts=4, retry_after_s=2.0)
    await batcher.start()
    try:
        running = asyncio.create_task(batcher.embed(["a"]))
        await wait_for(fake.entered)
        queued = asyncio.create_task(batcher.embed(["b", "c", "d"]))
        while batcher.queued_texts < 3:
            await asyncio.sleep(0.001)
        with pytest.raises(Overloaded) as caught:
            await batcher.embed(["e", "f"])
        assert caught.value.details["retry_after"] == 2.0
        assert caught.value.http_status == 503
        fake.release.set()
        await asyncio.wait_for(asyncio.gather(running, queued), timeout=5)
    finally:
        fake.release.set()
        await batcher.stop()


async def test_an_encoder_error_reaches_the_caller_and_the_batcher_keeps_serving() -> None:
    class Failing(HeldEncoder):
        def encode(
            self, texts: Sequence[str], *, long_text: LongText = "mean", batch_size: int = 64
        ) -> NDArray[np.float32]:
            if texts[0] == "boom":
                raise RuntimeError("model exploded")
            return super().encode(texts)

    batcher = EncoderBatcher(Failing())
    await batcher.start()
    try:
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.embed(["boom"])
        assert (await batcher.embed(["ok"])).shape == (1, 2)
    finally:
        await batcher.stop()


async def test_requests_after_stop_are_refused() -> None:
    batcher = EncoderBatcher(HeldEncoder())
    await batcher.start()
    await batcher.stop()
    with pytest.raises(Overloaded):
        await batcher.embed(["late"])
