"""Jobs, their chunks and leases, and idempotency keys, in the database.

A chunk moves `pending -> leased -> done` (or `failed` after too many attempts). The transitions that matter for
crash safety are single statements or single transactions:

- `claim` is one conditional `UPDATE ... WHERE (job_id, seq) = (SELECT ... LIMIT 1) RETURNING`. On PostgreSQL the
  inner select takes `FOR UPDATE SKIP LOCKED`, so concurrent workers pass over each other's candidates instead of
  queueing on them. On SQLite the UPDATE is the transaction's first statement, so it takes the database's write
  lock at once (what `BEGIN IMMEDIATE` would do), and the select and the update see one state.
- `complete` marks the chunk done, records its result file, adds its rows to the job, debits the key and adds the
  usage in one transaction, and only while the caller still holds the lease. A worker whose lease was taken over
  commits nothing, so each chunk is recorded, and billed, once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labelwise.storage.db import Database
from labelwise.storage.tables import ApiKeyRow, IdempotencyRow, JobChunkRow, JobRow, UsageRow

ACTIVE_STATES = ("queued", "running")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """Where a new chunk starts and how many rows it has."""

    start_row: int
    row_count: int


@dataclass(frozen=True, slots=True)
class ClaimedChunk:
    """A chunk this worker holds the lease on, with what it needs to process it."""

    job_id: str
    seq: int
    start_row: int
    row_count: int
    attempts: int
    kind: str
    key_prefix: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Bill:
    """What a completed chunk costs: the credits (debited only from a key with a balance) and the usage row."""

    credits: int
    texts: int
    characters: int
    route: str
    day: date


class JobRepository:
    """All reads and writes of `jobs` and `job_chunks`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, job: JobRow, chunks: Sequence[ChunkSpec]) -> None:
        """Insert a job and its pending chunks in one transaction."""
        with self.db.session() as session:
            session.add(job)
            session.flush()
            session.add_all(
                JobChunkRow(job_id=job.id, seq=i, start_row=c.start_row, row_count=c.row_count, state="pending")
                for i, c in enumerate(chunks)
            )

    def get(self, job_id: str, key_prefix: str | None = None) -> JobRow | None:
        """The job, or None; with `key_prefix` only when that key owns it."""
        query = select(JobRow).where(JobRow.id == job_id)
        if key_prefix is not None:
            query = query.where(JobRow.key_prefix == key_prefix)
        with self.db.session() as session:
            return session.scalar(query)

    def for_key(self, key_prefix: str, limit: int = 100) -> list[JobRow]:
        query = select(JobRow).where(JobRow.key_prefix == key_prefix).order_by(JobRow.created_at.desc()).limit(limit)
        with self.db.session() as session:
            return list(session.scalars(query).all())

    def chunks(self, job_id: str) -> list[JobChunkRow]:
        with self.db.session() as session:
            return list(session.scalars(select(JobChunkRow).where(JobChunkRow.job_id == job_id).order_by("seq")))

    def cancel(self, job_id: str, key_prefix: str) -> bool:
        """Cancel a queued or running job; False when it already ended. Its leased chunks finish, none start."""
        with self.db.session() as session:
            result = session.execute(
                update(JobRow)
                .where(JobRow.id == job_id, JobRow.key_prefix == key_prefix, JobRow.state.in_(ACTIVE_STATES))
                .values(state="cancelled", finished_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    def claim(self, owner: str, lease_seconds: float, max_attempts: int) -> ClaimedChunk | None:
        """Lease one pending chunk, or one whose lease expired, of an active job; None when there is none."""
        for _ in range(20):  # another worker may take our candidate between the select and the update: pick again
            now = time.time()
            claimable = or_(
                JobChunkRow.state == "pending", and_(JobChunkRow.state == "leased", JobChunkRow.lease_until < now)
            )
            with self.db.session() as session:
                candidate = session.execute(
                    select(JobChunkRow.job_id, JobChunkRow.seq)
                    .join(JobRow, JobRow.id == JobChunkRow.job_id)
                    .where(JobRow.state.in_(ACTIVE_STATES), JobChunkRow.attempts < max_attempts, claimable)
                    .order_by(JobRow.created_at, JobChunkRow.seq)
                    .limit(1)
                    .with_for_update(skip_locked=True, of=JobChunkRow)
                ).first()
                if candidate is None:
                    return None
                taken = session.execute(
                    update(JobChunkRow)
                    .where(JobChunkRow.job_id == candidate.job_id, JobChunkRow.seq == candidate.seq, claimable)
                    .values(
                        state="leased",
                        lease_owner=owner,
                        lease_until=now + lease_seconds,
                        attempts=JobChunkRow.attempts + 1,
                    )
                )
                if not getattr(taken, "rowcount", 0):
                    continue
                chunk = session.get_one(JobChunkRow, (candidate.job_id, candidate.seq), populate_existing=True)
                job = session.get_one(JobRow, candidate.job_id)
                if job.state == "queued":
                    job.state = "running"
                    job.started_at = utcnow()
                return ClaimedChunk(
                    job.id,
                    chunk.seq,
                    chunk.start_row,
                    chunk.row_count,
                    chunk.attempts,
                    job.kind,
                    job.key_prefix,
                    dict(job.params),
                )
        return None

    def renew(self, job_id: str, seq: int, owner: str, lease_seconds: float) -> bool:
        """Extend a held lease; False when it was lost (expired and claimed by another worker)."""
        with self.db.session() as session:
            result = session.execute(
                update(JobChunkRow).where(_held(job_id, seq, owner)).values(lease_until=time.time() + lease_seconds)
            )
            return bool(getattr(result, "rowcount", 0))

    def complete(
        self, chunk: ClaimedChunk, owner: str, result_path: str, bill: Bill, result: dict[str, Any] | None = None
    ) -> bool:
        """Mark a held chunk done with its result file, count its rows and bill them, all in one transaction.

        False (nothing written) when the lease was lost. When the key's balance does not cover the chunk the
        chunk is not done either: `InsufficientCredits` rises and the transaction rolls back.
        """
        with self.db.session() as session:
            marked = session.execute(
                update(JobChunkRow)
                .where(_held(chunk.job_id, chunk.seq, owner))
                .values(state="done", result_path=result_path, lease_owner=None, lease_until=None, error=None)
            )
            if not getattr(marked, "rowcount", 0):
                return False
            values: dict[str, Any] = {
                "rows_done": JobRow.rows_done + chunk.row_count,
                "chunks_done": JobRow.chunks_done + 1,
                "credits": JobRow.credits + bill.credits,
            }
            if result is not None:
                values["result"] = result
            session.execute(update(JobRow).where(JobRow.id == chunk.job_id).values(**values))
            self._debit(session, chunk.key_prefix, bill.credits)
            self._add_usage(session, chunk.key_prefix, bill)
            return True

    def fail_attempt(self, chunk: ClaimedChunk, owner: str, error: str, max_attempts: int) -> None:
        """Give a held chunk back after an error; after `max_attempts` it fails, and its job with it."""
        final = chunk.attempts >= max_attempts
        with self.db.session() as session:
            marked = session.execute(
                update(JobChunkRow)
                .where(_held(chunk.job_id, chunk.seq, owner))
                .values(state="failed" if final else "pending", lease_owner=None, lease_until=None, error=error)
            )
            if final and bool(getattr(marked, "rowcount", 0)):
                self._fail_job(
                    session, chunk.job_id, f"chunk {chunk.seq} failed after {chunk.attempts} attempts: {error}"
                )

    def reap(self, max_attempts: int) -> int:
        """Fail chunks whose lease expired after their last attempt (their worker died each time); their jobs too."""
        with self.db.session() as session:
            dead = session.execute(
                select(JobChunkRow.job_id, JobChunkRow.seq).where(
                    JobChunkRow.state == "leased",
                    JobChunkRow.lease_until < time.time(),
                    JobChunkRow.attempts >= max_attempts,
                )
            ).all()
            for job_id, seq in dead:
                message = f"the worker stopped {max_attempts} times while processing it"
                session.execute(
                    update(JobChunkRow)
                    .where(JobChunkRow.job_id == job_id, JobChunkRow.seq == seq, JobChunkRow.state == "leased")
                    .values(state="failed", lease_owner=None, lease_until=None, error=message)
                )
                self._fail_job(session, job_id, f"chunk {seq} failed: {message}")
            return len(dead)

    def fail_job(self, job_id: str, error: str) -> None:
        with self.db.session() as session:
            self._fail_job(session, job_id, error)

    def finishable(self) -> list[JobRow]:
        """Running jobs whose every chunk is done: ready to assemble."""
        query = select(JobRow).where(JobRow.state == "running", JobRow.chunks_done >= JobRow.chunks_total)
        with self.db.session() as session:
            return list(session.scalars(query).all())

    def succeed(self, job_id: str, result: dict[str, Any] | None = None) -> bool:
        values: dict[str, Any] = {"state": "succeeded", "finished_at": utcnow()}
        if result is not None:
            values["result"] = result
        with self.db.session() as session:
            done = session.execute(update(JobRow).where(JobRow.id == job_id, JobRow.state == "running").values(values))
            return bool(getattr(done, "rowcount", 0))

    @staticmethod
    def _fail_job(session: Session, job_id: str, error: str) -> None:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.state.in_(ACTIVE_STATES))
            .values(state="failed", error=error, finished_at=utcnow())
        )

    @staticmethod
    def _debit(session: Session, key_prefix: str, credits: int) -> None:
        if credits <= 0:
            return
        row = session.execute(select(ApiKeyRow.credits).where(ApiKeyRow.prefix == key_prefix).with_for_update()).first()
        if row is None or row.credits is None:
            return  # unlimited key (or deleted since): nothing to debit
        if row.credits < credits:
            raise InsufficientCredits(credits, row.credits)
        session.execute(
            update(ApiKeyRow).where(ApiKeyRow.prefix == key_prefix).values(credits=ApiKeyRow.credits - credits)
        )

    def _add_usage(self, session: Session, key_prefix: str, bill: Bill) -> None:
        insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        counters = {"requests": 1, "texts": bill.texts, "characters": bill.characters, "credits": bill.credits}
        statement = insert(UsageRow).values(key_prefix=key_prefix, day=bill.day, route=bill.route, **counters)
        statement = statement.on_conflict_do_update(
            index_elements=["key_prefix", "day", "route"],
            set_={name: getattr(UsageRow, name) + getattr(statement.excluded, name) for name in counters},
        )
        session.execute(statement)


def _held(job_id: str, seq: int, owner: str) -> Any:
    return and_(
        JobChunkRow.job_id == job_id,
        JobChunkRow.seq == seq,
        JobChunkRow.state == "leased",
        JobChunkRow.lease_owner == owner,
    )


class InsufficientCredits(Exception):  # a storage-level signal; the service maps it to its own error
    """The key's balance does not cover a chunk's cost."""

    def __init__(self, cost: int, balance: int) -> None:
        super().__init__(f"credits: this chunk costs {cost:,} and the key's balance is {balance:,}")
        self.cost = cost
        self.balance = balance


@dataclass(frozen=True, slots=True)
class IdempotentAnswer:
    """What a stored idempotency key says: `status` None while its first request is still running."""

    body_hash: str
    status: int | None
    response: dict[str, Any] | None


class IdempotencyRepository:
    """Idempotency keys per API key; rows older than `keep` are removed as new ones arrive."""

    def __init__(self, db: Database, keep: timedelta = timedelta(hours=24)) -> None:
        self.db = db
        self.keep = keep

    def reserve(self, key_prefix: str, idem_key: str, body_hash: str) -> IdempotentAnswer | None:
        """Claim the key for a new request (None), or return what is stored for it already."""
        now = utcnow()
        with self.db.session() as session:
            session.execute(delete(IdempotencyRow).where(IdempotencyRow.created_at < now - self.keep))
        try:
            with self.db.session() as session:
                session.add(
                    IdempotencyRow(
                        key_prefix=key_prefix, idem_key=idem_key, body_hash=body_hash, status=None, created_at=now
                    )
                )
            return None
        except IntegrityError:
            pass  # the primary key exists: a repeat
        with self.db.session() as session:
            row = session.get(IdempotencyRow, (key_prefix, idem_key))
            if row is None:  # removed between the two statements: the first request failed; treat as new
                return self.reserve(key_prefix, idem_key, body_hash)
            return IdempotentAnswer(row.body_hash, row.status, row.response)

    def store(self, key_prefix: str, idem_key: str, status: int, response: dict[str, Any]) -> None:
        with self.db.session() as session:
            session.execute(
                update(IdempotencyRow)
                .where(IdempotencyRow.key_prefix == key_prefix, IdempotencyRow.idem_key == idem_key)
                .values(status=status, response=response)
            )

    def release(self, key_prefix: str, idem_key: str) -> None:
        """Forget a reservation whose request failed, so that a retry runs again."""
        with self.db.session() as session:
            session.execute(
                delete(IdempotencyRow).where(
                    IdempotencyRow.key_prefix == key_prefix,
                    IdempotencyRow.idem_key == idem_key,
                    IdempotencyRow.status.is_(None),
                )
            )

    def count(self) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(IdempotencyRow)) or 0)
