"""The one buffered writer (usage ledger, prediction log): merged by key, bounded, nothing lost or written twice."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from labelwise.storage.buffer import BufferedWriter


class Sink:
    """Writes into a list, or fails like a database that is away."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.down = False

    def write(self, rows: Sequence[int]) -> None:
        if self.down:
            raise ConnectionError("database away")
        self.batches.append(list(rows))


def test_rows_with_a_key_merge_and_rows_without_append() -> None:
    sink = Sink()
    buffer = BufferedWriter(sink.write, name="t", max_rows=10, merge=lambda a, b: a + b)
    for _ in range(1000):
        buffer.add(1, key="k")
    buffer.add(5)
    buffer.add(5)
    assert buffer.pending == 3
    assert asyncio.run(buffer.flush()) == 3
    assert sink.batches == [[1000, 5, 5]]
    assert buffer.pending == 0


def test_failed_write_keeps_rows_merged_with_newer_and_writes_them_once() -> None:
    sink = Sink()
    buffer = BufferedWriter(sink.write, name="t", max_rows=10, merge=lambda a, b: a + b)
    buffer.add(2, key="k")
    sink.down = True
    for _ in range(3):
        with pytest.raises(ConnectionError):
            asyncio.run(buffer.flush())
        buffer.add(1, key="k")
    assert buffer.pending == 1
    sink.down = False
    asyncio.run(buffer.flush())
    asyncio.run(buffer.flush())  # nothing left: no second write
    assert sink.batches == [[5]]


def test_full_buffer_refuses_new_rows_counts_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    dropped: list[int] = []
    buffer = BufferedWriter(sink.write, name="usage", max_rows=3, merge=lambda a, b: a + b, on_drop=dropped.append)
    with caplog.at_level(logging.ERROR, logger="labelwise.storage.buffer"):
        for key in "abcde":
            buffer.add(1, key=key)
        buffer.add(1, key="a")  # an existing row still takes more: merging needs no room
        assert buffer.add_many([7, 7]) == 2
    assert buffer.pending == 3
    assert buffer.dropped == 4
    assert dropped == [1, 1, 2]
    assert len([r for r in caplog.records if "buffer full" in r.getMessage()]) == 1
    assert asyncio.run(buffer.flush()) == 3
    assert sink.batches == [[2, 1, 1]]
    assert buffer.add_many([7, 7, 7, 7]) == 1  # room again, up to the bound


def test_rows_being_written_count_against_the_bound() -> None:
    async def scenario() -> tuple[int, bool]:
        loop = asyncio.get_running_loop()
        started, gate = asyncio.Event(), asyncio.Event()

        def slow_write(rows: Sequence[int]) -> None:
            loop.call_soon_threadsafe(started.set)
            asyncio.run_coroutine_threadsafe(gate.wait(), loop).result()

        buffer = BufferedWriter(slow_write, name="t", max_rows=2)
        buffer.add(1)
        buffer.add(2)
        flushing = asyncio.create_task(buffer.flush())
        await started.wait()
        accepted = buffer.add(3)  # the two rows in flight still hold their room
        pending = buffer.pending
        gate.set()
        await flushing
        return pending, accepted

    assert asyncio.run(scenario()) == (2, False)


def test_close_writes_what_is_left_or_logs_it_as_lost(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    buffer = BufferedWriter(sink.write, name="usage", max_rows=10)
    buffer.add(1)
    asyncio.run(buffer.close())
    assert sink.batches == [[1]]
    buffer.add(2)
    sink.down = True
    asyncio.run(buffer.close())  # does not raise: the server is stopping
    lost = [r for r in caplog.records if r.getMessage() == "rows not written at shutdown"]
    assert [(r.buffer, r.rows) for r in lost] == [("usage", 1)]  # type: ignore[attr-defined]
