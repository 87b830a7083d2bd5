"""Repositories: the only code that runs queries. Services use these; routes never query directly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from labelwise.domain import ModelVersion, TaskType
from labelwise.errors import Conflict, ModelNotFound
from labelwise.storage.db import Database
from labelwise.storage.tables import ApiKeyRow, AuditRow, ModelAliasRow, ModelVersionRow, UsageRow


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns; everything we store is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ModelRepository:
    """Model versions and aliases."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _to_domain(row: ModelVersionRow, aliases: list[str]) -> ModelVersion:
        return ModelVersion(
            name=row.name,
            version=row.version,
            engine=row.engine,
            task=TaskType(row.task),
            labels=list(row.labels),
            created_at=_aware(row.created_at),
            sha256=row.sha256,
            path=row.path,
            metrics=dict(row.metrics or {}),
            thresholds=list(row.thresholds) if row.thresholds is not None else None,
            data=dict(row.data or {}),
            params=dict(row.params or {}),
            aliases=aliases,
        )

    def add(self, version: ModelVersion) -> None:
        """Insert a version; `Conflict` if that name and version exist already."""
        major, minor, patch = (int(p) for p in version.version.split("."))
        row = ModelVersionRow(
            name=version.name,
            version=version.version,
            major=major,
            minor=minor,
            patch=patch,
            engine=version.engine,
            task=version.task.value,
            labels=version.labels,
            sha256=version.sha256,
            path=version.path,
            metrics=version.metrics,
            thresholds=version.thresholds,
            data=version.data,
            params=version.params,
            created_at=version.created_at,
        )
        try:
            with self.db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"model {version.name} version {version.version} exists already") from exc

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of a model, newest first, with their aliases resolved."""
        with self.db.session() as session:
            rows = session.scalars(
                select(ModelVersionRow)
                .where(ModelVersionRow.name == name)
                .order_by(ModelVersionRow.major.desc(), ModelVersionRow.minor.desc(), ModelVersionRow.patch.desc())
            ).all()
            alias_rows = session.scalars(select(ModelAliasRow).where(ModelAliasRow.name == name)).all()
        return self._with_aliases(rows, alias_rows)

    def all_versions(self) -> dict[str, list[ModelVersion]]:
        """Every model's versions, newest first, keyed by model name (sorted)."""
        with self.db.session() as session:
            rows = session.scalars(select(ModelVersionRow)).all()
            alias_rows = session.scalars(select(ModelAliasRow)).all()
        by_name: dict[str, list[ModelVersionRow]] = {}
        for row in rows:
            by_name.setdefault(row.name, []).append(row)
        out: dict[str, list[ModelVersion]] = {}
        for name in sorted(by_name):
            ordered = sorted(by_name[name], key=lambda r: (r.major, r.minor, r.patch), reverse=True)
            out[name] = self._with_aliases(ordered, [a for a in alias_rows if a.name == name])
        return out

    def _with_aliases(self, rows: Sequence[ModelVersionRow], alias_rows: Sequence[ModelAliasRow]) -> list[ModelVersion]:
        explicit: dict[int, list[str]] = {}
        for alias in alias_rows:
            explicit.setdefault(alias.version_id, []).append(alias.alias)
        has_production = any(a.alias == "production" for a in alias_rows)
        out = []
        for i, row in enumerate(rows):
            names = sorted(explicit.get(row.id, []))
            if i == 0:
                names.insert(0, "latest")
                if not has_production:
                    names.insert(0, "production")
            out.append(self._to_domain(row, names))
        return out

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` at `version` of model `name` (created or moved)."""
        with self.db.session() as session:
            version_id = session.scalar(
                select(ModelVersionRow.id).where(ModelVersionRow.name == name, ModelVersionRow.version == version)
            )
            if version_id is None:
                raise ModelNotFound(f"model {name} has no version {version}", param="version")
            existing = session.get(ModelAliasRow, (name, alias))
            if existing is None:
                session.add(ModelAliasRow(name=name, alias=alias, version_id=version_id, updated_at=utcnow()))
            else:
                existing.version_id = version_id
                existing.updated_at = utcnow()

    def remove_alias(self, name: str, alias: str) -> bool:
        """Drop an explicit alias; True if it existed."""
        with self.db.session() as session:
            result = session.execute(
                delete(ModelAliasRow).where(ModelAliasRow.name == name, ModelAliasRow.alias == alias)
            )
            return bool(getattr(result, "rowcount", 0))

    def delete(self, name: str, version: str | None = None) -> list[ModelVersion]:
        """Delete one version (or all versions) of a model and the aliases pointing at them; returns them."""
        doomed = [v for v in self.versions(name) if version is None or v.version == version]
        if not doomed:
            raise ModelNotFound(
                f"model {name} not found" if version is None else f"model {name} has no version {version}"
            )
        with self.db.session() as session:
            ids = select(ModelVersionRow.id).where(
                ModelVersionRow.name == name, ModelVersionRow.version.in_([v.version for v in doomed])
            )
            session.execute(delete(ModelAliasRow).where(ModelAliasRow.version_id.in_(ids)))
            session.execute(
                delete(ModelVersionRow).where(
                    ModelVersionRow.name == name, ModelVersionRow.version.in_([v.version for v in doomed])
                )
            )
        return doomed

    def fingerprint(self) -> tuple[int, str]:
        """A cheap value that changes whenever versions or aliases change: lets servers poll for updates."""
        with self.db.session() as session:
            versions = session.execute(select(ModelVersionRow.id, ModelVersionRow.name)).all()
            aliases = session.execute(
                select(
                    ModelAliasRow.name,
                    ModelAliasRow.alias,
                    ModelAliasRow.version_id,
                    ModelAliasRow.updated_at,
                )
            ).all()
        return len(versions), repr((sorted(versions), sorted(aliases)))


_KEYS: Table = ApiKeyRow.__table__  # type: ignore[assignment]  # a declarative class's table is a Table
# The debit and refund run on every metered request: built once on the table (not the ORM class), so executing them
# skips statement construction and the ORM compile path, which measured several times the cost of the query.
_DEBIT = (
    update(_KEYS)
    .where(_KEYS.c.prefix == bindparam("key"), _KEYS.c.credits.is_not(None), _KEYS.c.credits >= bindparam("cost"))
    .values(credits=_KEYS.c.credits - bindparam("cost"))
    .returning(_KEYS.c.credits)
)
_REFUND = (
    update(_KEYS)
    .where(_KEYS.c.prefix == bindparam("key"), _KEYS.c.credits.is_not(None))
    .values(credits=_KEYS.c.credits + bindparam("cost"))
)


class KeyRepository:
    """API keys (prefix and hash only) and the audit log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, prefix: str, secret_hash: str, name: str, scopes: list[str], **settings: Any) -> ApiKeyRow:
        """Insert a key; `settings` are further `ApiKeyRow` columns (rate_limit, credits, expires_at, disabled)."""
        row = ApiKeyRow(
            prefix=prefix, secret_hash=secret_hash, name=name, scopes=scopes, created_at=utcnow(), **settings
        )
        with self.db.session() as session:
            session.add(row)
        return row

    def update(self, prefix: str, values: dict[str, Any]) -> ApiKeyRow | None:
        """Set columns of an unrevoked key and return it; None if there is none with that prefix."""
        with self.db.session() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix, ApiKeyRow.revoked_at.is_(None)))
            if row is not None:
                for name, value in values.items():
                    setattr(row, name, value)
            return row

    def add_credits(self, prefix: str, amount: int) -> int | None:
        """Atomically add (or with a negative amount, take) credits; the new balance, or None when the key has
        no balance (unlimited) or the result would be negative."""
        with self.db.engine.begin() as connection:
            return connection.execute(
                update(ApiKeyRow)
                .where(
                    ApiKeyRow.prefix == prefix,
                    ApiKeyRow.credits.is_not(None),
                    ApiKeyRow.credits + amount >= 0,
                )
                .values(credits=ApiKeyRow.credits + amount)
                .returning(ApiKeyRow.credits)
            ).scalar()

    def debit(self, prefix: str, cost: int) -> int | None:
        """Take `cost` credits in one conditional UPDATE; the balance left, or None when it did not cover `cost`.

        The `WHERE credits >= cost` makes the check and the debit one atomic step, so concurrent requests (in any
        worker or replica) never spend the same credit twice. A plain connection, not an ORM session: this runs on
        every metered request.
        """
        with self.db.engine.begin() as connection:
            remaining: int | None = connection.execute(_DEBIT, {"key": prefix, "cost": cost}).scalar()
            return remaining

    def refund(self, prefix: str, cost: int) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(_REFUND, {"key": prefix, "cost": cost})

    def by_prefix(self, prefix: str) -> ApiKeyRow | None:
        with self.db.session() as session:
            return session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))

    def all(self) -> list[ApiKeyRow]:
        with self.db.session() as session:
            return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)).all())

    def revoke(self, prefix: str) -> bool:
        with self.db.session() as session:
            result = session.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.prefix == prefix, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return bool(getattr(result, "rowcount", 0))

    def touch(self, prefix: str) -> None:
        with self.db.session() as session:
            session.execute(update(ApiKeyRow).where(ApiKeyRow.prefix == prefix).values(last_used_at=utcnow()))

    def audit(
        self,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        with self.db.session() as session:
            session.add(
                AuditRow(
                    at=utcnow(),
                    actor=actor,
                    action=action,
                    target=target,
                    details=details or {},
                    request_id=request_id,
                )
            )

    def audit_log(self, limit: int = 100) -> list[AuditRow]:
        with self.db.session() as session:
            return list(session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)).all())


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """Counters of one key on one UTC day on one route."""

    key_prefix: str
    day: date
    route: str
    requests: int = 0
    texts: int = 0
    characters: int = 0
    credits: int = 0
    tokens: int = 0


_USAGE_COUNTERS = ("requests", "texts", "characters", "credits", "tokens")


class UsageRepository:
    """The daily usage ledger: counters are only ever added to, with an upsert."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, entries: Sequence[UsageEntry]) -> None:
        """Add each entry's counters to its row (created at zero when missing), all in one transaction."""
        if not entries:
            return
        # Sorted, so that two workers flushing at once lock rows in the same order and cannot deadlock.
        values = [
            {"key_prefix": e.key_prefix, "day": e.day, "route": e.route, **{c: getattr(e, c) for c in _USAGE_COUNTERS}}
            for e in sorted(entries, key=lambda e: (e.key_prefix, e.day, e.route))
        ]
        insert = sqlite_insert if self.db.is_sqlite else postgresql_insert
        statement = insert(UsageRow).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["key_prefix", "day", "route"],
            set_={c: getattr(UsageRow, c) + getattr(statement.excluded, c) for c in _USAGE_COUNTERS},
        )
        with self.db.session() as session:
            session.execute(statement)

    def query(self, start: date, end: date, key_prefix: str | None = None) -> list[UsageEntry]:
        """Rows from `start` to `end` inclusive, for one key or all, ordered by day, key and route."""
        query = select(UsageRow).where(UsageRow.day >= start, UsageRow.day <= end)
        if key_prefix is not None:
            query = query.where(UsageRow.key_prefix == key_prefix)
        query = query.order_by(UsageRow.day, UsageRow.key_prefix, UsageRow.route)
        with self.db.session() as session:
            return [
                UsageEntry(r.key_prefix, r.day, r.route, r.requests, r.texts, r.characters, r.credits, r.tokens)
                for r in session.scalars(query).all()
            ]
