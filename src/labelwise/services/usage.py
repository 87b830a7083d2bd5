"""Usage metering: a ledger per key, UTC day and route (requests, texts, characters, credits).

Recording is an addition to an in-memory buffer on the event loop (`storage.buffer.BufferedWriter`, one row per
key, day and route), so the request path does no I/O for it. A background task flushes the buffer every
`flush_seconds` with one upsert per flush (`INSERT ... ON CONFLICT DO UPDATE`, on SQLite and PostgreSQL alike), and
`stop()` flushes what is left at shutdown. `flush()` is public: a reader (`GET /v1/usage`, tests) flushes first and
so sees everything this process has recorded. A flush that fails puts its counts back for the next one, so usage
recorded while the database is away is written once, by the first flush after it is back. The buffer holds at most
`max_rows` rows (100,000 key-day-route rows by default, far more than an outage of hours fills); beyond that new
rows are refused, counted in `labelwise_buffer_dropped_total{buffer="usage"}` and logged.

Only successful, billed work is recorded: a request refused for its key, its size, its rate or its input never
reaches the code that records, so usage texts always equal the texts of 2xx responses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from labelwise.errors import Forbidden, InvalidRequest
from labelwise.monitoring.metrics import BUFFER_DROPPED
from labelwise.periodic import Periodic
from labelwise.services.keys import Principal, Scope, split_key
from labelwise.storage.buffer import BufferedWriter
from labelwise.storage.repositories import UsageEntry, UsageRepository

logger = logging.getLogger(__name__)

MAX_REPORT_DAYS = 366
MAX_BUFFERED_ROWS = 100_000


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(slots=True)
class _Row:
    """A ledger row while it is buffered: added to in place (a request costs one small object, as before the
    buffer was shared), turned into a `UsageEntry` when written."""

    key_prefix: str
    day: date
    route: str
    requests: int
    texts: int
    characters: int
    credits: int
    tokens: int = 0

    def entry(self) -> UsageEntry:
        return UsageEntry(
            self.key_prefix, self.day, self.route, self.requests, self.texts, self.characters, self.credits, self.tokens
        )


def _added(held: _Row, more: _Row) -> _Row:
    held.requests += more.requests
    held.texts += more.texts
    held.characters += more.characters
    held.credits += more.credits
    held.tokens += more.tokens
    return held


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Ledger rows in a date range (both ends included), and their sums."""

    start: date
    end: date
    rows: list[UsageEntry]

    @property
    def totals(self) -> UsageEntry:
        return UsageEntry(
            key_prefix="*",
            day=self.end,
            route="*",
            requests=sum(r.requests for r in self.rows),
            texts=sum(r.texts for r in self.rows),
            characters=sum(r.characters for r in self.rows),
            credits=sum(r.credits for r in self.rows),
            tokens=sum(r.tokens for r in self.rows),
        )


def report_window(
    start: date | None, end: date | None, *, days: int = 30, today: date | None = None
) -> tuple[date, date]:
    """The range to report: `end` defaults to today (UTC), `start` to `days` days up to `end`; checked."""
    last = end or today or utc_today()
    first = start or last - timedelta(days=days - 1)
    if first > last:
        raise InvalidRequest(f"from: {first.isoformat()} is after to: {last.isoformat()}", param="from")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise InvalidRequest(
            f"from: {(last - first).days + 1} days requested, the limit is {MAX_REPORT_DAYS}", param="from"
        )
    return first, last


def visible_key(principal: Principal, requested: str | None) -> str | None:
    """Whose usage `principal` may read: its own, or with the admin scope any key's (None: all keys)."""
    wanted = (split_key(requested) or requested) if requested else None
    if Scope.ADMIN.value in principal.scopes:
        return wanted
    if wanted is not None and wanted != principal.prefix:
        raise Forbidden("key: a key may read only its own usage; other keys' needs the 'admin' scope", param="key")
    return principal.prefix


class UsageMeter:
    """Buffers usage in memory and writes it to the ledger in batches; reads the ledger back."""

    def __init__(
        self,
        repo: UsageRepository,
        *,
        flush_seconds: float = 1.0,
        today: Callable[[], date] = utc_today,
        max_rows: int = MAX_BUFFERED_ROWS,
    ) -> None:
        self.repo = repo
        self.flush_seconds = flush_seconds
        self._today = today
        self._buffer = BufferedWriter(
            self._write, name="usage", max_rows=max_rows, merge=_added, on_drop=BUFFER_DROPPED.labels("usage").inc
        )
        self._periodic = Periodic(
            self.flush,
            flush_seconds,
            name="labelwise-usage-flush",
            failure="usage flush failed; will retry",
            context=lambda: {"rows": self.pending},
        )

    def record(self, key: str, route: str, *, texts: int, characters: int, credits: int, tokens: int = 0) -> None:
        """Count one successful request of `texts` texts (and `tokens` language-model tokens; no I/O: flushed
        later)."""
        day = self._today()
        self._buffer.add(_Row(key, day, route, 1, texts, characters, credits, tokens), key=(key, day, route))

    def _write(self, rows: Sequence[_Row]) -> None:
        self.repo.add([row.entry() for row in rows])

    @property
    def pending(self) -> int:
        """Ledger rows waiting in memory for the next flush."""
        return self._buffer.pending

    @property
    def dropped(self) -> int:
        """Rows refused because the buffer was full (see `MAX_BUFFERED_ROWS`)."""
        return self._buffer.dropped

    async def flush(self) -> None:
        """Write the buffer to the ledger now; on failure the counts go back into the buffer and the error rises."""
        await self._buffer.flush()

    def start(self) -> None:
        """Start the periodic flush (call from inside the running event loop)."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        await self._periodic.stop()
        await self._buffer.close()

    def read(self, start: date, end: date, key: str | None = None) -> UsageReport:
        """The ledger as stored (what other processes have not flushed yet is not in it)."""
        return UsageReport(start, end, self.repo.query(start, end, key))

    async def report(self, start: date, end: date, key: str | None = None) -> UsageReport:
        """The ledger after flushing this process's buffer, read off the event loop."""
        await self.flush()
        return await asyncio.to_thread(self.read, start, end, key)
