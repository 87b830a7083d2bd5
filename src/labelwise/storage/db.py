"""Database connection and migrations. One `Database` per process, built by the composition root."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

# The newest revision of each branch in migrations/versions (tests/unit/storage checks it against Alembic).
HEADS = frozenset({"0003_jobs", "0003_monitoring", "0004_usage_tokens"})


def _json_text(value: Any) -> str:
    """JSON columns are written with orjson (several times faster than the standard library; same JSON)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (servers) proceed while a trainer writes; busy_timeout waits instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """Owns the SQLAlchemy engine and session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False}, json_serializer=_json_text
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(
                url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=_json_text
            )
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe to call on every start).

        A database already at `HEADS` is left alone without loading Alembic and its scripts (about 0.4 s of every
        start); tests hold `HEADS` equal to the migration scripts' heads.
        """
        if self.at_heads():
            return
        from alembic import command  # imported here: a process that does not migrate never pays for it

        try:
            with self.engine.begin() as connection:
                if not self.is_sqlite:
                    # Several replicas may start at once; one migrates, the others wait and find nothing to do.
                    connection.execute(text("SELECT pg_advisory_xact_lock(7391)"))
                config = alembic_config(self.url)
                config.attributes["connection"] = connection
                command.upgrade(config, "heads")
        except OperationalError as exc:
            raise StorageError(f"database unreachable: {_redact(self.url)}") from exc

    def at_heads(self) -> bool:
        """True when the schema is at the newest revision of every migration branch."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except (OperationalError, ProgrammingError):  # no such table yet, or no database
            return False
        return set(rows) == HEADS

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except OperationalError:
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("labelwise.storage") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _redact(url: str) -> str:
    """The URL with any password replaced by `***`, safe for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
