"""Rows on their way to the database, held in memory and written in batches: the one buffered writer behind the
usage ledger and the prediction log.

Adding a row does no I/O, so the request path never waits for the database. `flush()` writes everything held in
one call of `write` (one transaction) from a thread; if that fails the rows go back, merged with what arrived
meanwhile, so a database that is away loses nothing and, because a batch leaves the buffer only when its write has
committed, nothing is written twice.

The buffer is bounded: at most `max_rows` rows held (those being written count too). Rows with a key are merged
into the row of the same key (`merge`), so the usage ledger holds one row per key, day and route however many
requests arrive while the database is down; rows without a key (the prediction log) are appended. A new row that
finds the buffer full is refused: counted in `dropped`, reported to `on_drop` (the owner's Prometheus counter) and
logged once per time the buffer fills, never silently.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

R = TypeVar("R")


class BufferedWriter(Generic[R]):
    """Holds rows until `flush()`; `name` names the buffer in logs and metrics."""

    def __init__(
        self,
        write: Callable[[Sequence[R]], object],
        *,
        name: str,
        max_rows: int,
        merge: Callable[[R, R], R] | None = None,
        on_drop: Callable[[int], object] | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows: {max_rows}, at least 1")
        self.write = write
        self.name = name
        self.max_rows = max_rows
        self.merge = merge
        self.on_drop = on_drop
        self.dropped = 0
        self._rows: dict[Hashable, R] = {}
        self._writing = 0  # rows of the batch being written: they still hold memory and come back if it fails
        self._full = False
        self._serial = itertools.count()
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Rows held, including those being written."""
        return len(self._rows) + self._writing

    def add(self, row: R, key: Hashable | None = None) -> bool:
        """Hold `row` (merged into the row of the same `key`, if any); False when refused because the buffer is full."""
        if key is not None and self.merge is not None:
            held = self._rows.get(key)
            if held is not None:
                self._rows[key] = self.merge(held, row)
                return True
        if self.pending >= self.max_rows:
            self._refuse(1)
            return False
        self._full = False
        self._rows[key if key is not None else ("#", next(self._serial))] = row
        return True

    def add_many(self, rows: Sequence[R]) -> int:
        """Append rows without keys, as many as there is room for; how many were refused."""
        room = max(0, self.max_rows - self.pending)
        for row in rows[:room]:
            self._rows[("#", next(self._serial))] = row
        refused = len(rows) - min(room, len(rows))
        if refused:
            self._refuse(refused)
        elif rows:
            self._full = False
        return refused

    def _refuse(self, count: int) -> None:
        self.dropped += count
        if self.on_drop is not None:
            self.on_drop(count)
        if not self._full:  # once per time the buffer fills, not per row
            self._full = True
            logger.error(
                "write buffer full; new rows are dropped until the database takes the held ones",
                extra={"buffer": self.name, "max_rows": self.max_rows},
            )

    async def flush(self) -> int:
        """Write every held row in one call of `write`; how many rows were written. On failure the rows go back
        (merged with newer ones) and the error rises."""
        async with self._lock:
            if not self._rows:
                return 0
            batch, self._rows = self._rows, {}
            self._writing = len(batch)
            try:
                await asyncio.to_thread(self.write, list(batch.values()))
            except BaseException:
                self._put_back(batch)
                raise
            finally:
                self._writing = 0
            return len(batch)

    async def close(self) -> None:
        """The last flush, at shutdown: rows that cannot be written then are logged as lost, with their count."""
        try:
            await self.flush()
        except Exception:
            logger.exception("rows not written at shutdown", extra={"buffer": self.name, "rows": self.pending})

    def _put_back(self, batch: dict[Hashable, R]) -> None:
        for key, row in self._rows.items():
            held = batch.get(key)
            batch[key] = row if held is None or self.merge is None else self.merge(held, row)
        self._rows = batch
