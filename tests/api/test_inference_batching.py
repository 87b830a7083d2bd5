"""MicroBatcher and PredictionCache, without HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from labelwise.engines.base import FloatArray
from labelwise.errors import Overloaded
from labelwise.inference.batcher import MicroBatcher
from labelwise.inference.cache import PredictionCache, text_digest

pytestmark = pytest.mark.anyio


class Recorder:
    """A predict function that returns each text's length and records the batches it saw."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, texts: Sequence[str]) -> FloatArray:
        self.batches.append(list(texts))
        return np.array([[float(len(t)), 1.0] for t in texts])


def batcher(predict: Recorder, **kwargs: object) -> MicroBatcher:
    options: dict[str, object] = {"name": "m:1.0.0", "max_size": 8, "max_wait_ms": 5_000.0, "queue_max": 100}
    options.update(kwargs)
    return MicroBatcher(predict, **options)  # type: ignore[arg-type]


async def test_requests_in_the_same_turn_share_one_call_and_get_their_own_rows() -> None:
    predict = Recorder()
    b = batcher(predict)
    results = await asyncio.gather(*(b.submit(["x" * n]) for n in range(1, 6)), b.submit(["ab", "abc"]))
    assert len(predict.batches) == 1
    assert [float(r[0][0, 0]) for r in results[:5]] == [1, 2, 3, 4, 5]
    assert results[5][0][:, 0].tolist() == [2.0, 3.0]


async def test_a_lone_request_does_not_wait_for_company() -> None:
    # max_wait is 5 s: finishing well inside the timeout shows the wait is not added when the engine is idle.
    b = batcher(Recorder())
    rows, timing = await asyncio.wait_for(b.submit(["alone"]), timeout=2.0)
    assert rows.shape == (1, 2)
    assert timing.queue_ms < 2_000


async def test_calls_hold_at_most_max_size_texts_but_never_split_a_request() -> None:
    predict = Recorder()
    b = batcher(predict, max_size=4)
    await asyncio.gather(*(b.submit([f"t{i}"]) for i in range(10)), b.submit(["big"] * 6))
    assert all(len(batch) <= 4 or batch == ["big"] * 6 for batch in predict.batches)
    assert sum(len(batch) for batch in predict.batches) == 16


async def test_requests_arriving_during_a_call_join_the_next_one() -> None:
    predict = Recorder()
    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        b = batcher(predict, executor=pool, max_wait_ms=0.0)

        def slow(texts: Sequence[str]) -> FloatArray:
            gate.wait(10)
            return predict(texts)

        b.predict = slow
        first = asyncio.ensure_future(b.submit(["first"]))
        await asyncio.sleep(0.01)
        later = [asyncio.ensure_future(b.submit([f"later {i}"])) for i in range(5)]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *later)
    assert [len(batch) for batch in predict.batches] == [1, 5]


async def test_full_queue_raises_overloaded_at_once() -> None:
    b = batcher(Recorder(), queue_max=3)
    outcomes = await asyncio.gather(*(b.submit(["x"]) for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 2
    assert b.queued_texts == 0
    rows, _ = await b.submit(["x"] * 50)  # an empty queue takes one request larger than the limit
    assert rows.shape == (50, 2)


async def test_a_failing_call_fails_its_requests_only() -> None:
    calls = 0

    def flaky(texts: Sequence[str]) -> FloatArray:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return np.zeros((len(texts), 2))

    b = MicroBatcher(flaky, name="m", max_size=8, max_wait_ms=0, queue_max=10)
    outcomes = await asyncio.gather(b.submit(["a"]), b.submit(["b"]), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    rows, _ = await b.submit(["c"])
    assert rows.shape == (1, 2)


def test_cache_evicts_least_recently_used() -> None:
    cache = PredictionCache(2)
    a, b, c = (("m:1", text_digest(t)) for t in "abc")
    cache.put(a, np.array([1.0]))
    cache.put(b, np.array([2.0]))
    assert cache.get(a) is not None  # a is now the most recent
    cache.put(c, np.array([3.0]))
    assert cache.get(b) is None
    assert cache.get(a) is not None
    assert cache.get(c) is not None
    assert len(cache) == 2


def test_cache_batch_calls_keep_lru_order_counts_and_copies() -> None:
    cache = PredictionCache(3)
    a, b, c, d = (("m:1", text_digest(t)) for t in "abcd")
    batch = np.arange(8.0).reshape(4, 2)
    cache.put_many([a, b, a, c], batch)  # a repeated: held once, with its later row, as more recent than b
    batch[:] = -1.0  # the cache holds copies, not views of the batch
    assert len(cache) == 3
    found = cache.get_many([b, d, a])
    assert [None if row is None else row.tolist() for row in found] == [[2.0, 3.0], None, [4.0, 5.0]]
    assert (cache.hits, cache.misses) == (2, 1)
    cache.put_many([d], np.zeros((1, 2)))  # c is now the least recent: b and a were read after it was put
    assert cache.get(c) is None
    assert all(row is not None for row in cache.get_many([a, b, d]))


def test_cache_keys_separate_versions_and_handle_surrogates() -> None:
    cache = PredictionCache(10)
    cache.put(("m:1", text_digest("\ud800")), np.array([1.0]))
    assert cache.get(("m:2", text_digest("\ud800"))) is None
    assert cache.get(("m:1", text_digest("\ud800"))) is not None
    disabled = PredictionCache(0)
    disabled.put(("m:1", text_digest("x")), np.array([1.0]))
    assert len(disabled) == 0
