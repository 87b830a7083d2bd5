"""Database connection and migrations. One `Database` per process, built by the composition root.

A PostgreSQL server that cannot be reached (stopped, restarting, the network away) is mapped here, once, for every
caller: the driver's connection errors become `StorageUnavailable` (503 `storage_unavailable` with `Retry-After` at
the API), raised `from` the original. The outage is logged once when it starts and once when a statement succeeds
again, not per request; nothing needs restarting, since the pool (pre-ping) replaces the dead connections.
SQLite, a file in the process's own data directory, has no such outage and keeps its errors as they are.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import StorageUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)


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


UNAVAILABLE_MESSAGE = "storage unavailable: the database cannot be reached; retry later"
RETRY_AFTER_SECONDS = 5
CONNECT_TIMEOUT_SECONDS = 5


class Availability:
    """Whether the database answered lately: flips to down on the first connection error of an outage and back up
    on the first statement that succeeds, logging each change once (the URL without its password, the error's
    class, never its text)."""

    def __init__(self, url: str) -> None:
        self.url = _redact(url)
        self._down_since: float | None = None
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        logger.warning(
            "database unavailable; answering 503 storage_unavailable until it is back",
            extra={"database": self.url, "error": type(error).__name__},
        )

    def answered(self) -> None:
        if self._down_since is None:  # the common case: no lock taken
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds, self._down_since = time.monotonic() - self._down_since, None
        logger.warning("database available again", extra={"database": self.url, "outage_seconds": round(seconds, 3)})


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
            # A host that drops packets would hold each request as long as the driver waits for a connection:
            # without a bound of the URL's own, a request gives up after CONNECT_TIMEOUT_SECONDS (and gets 503).
            waits = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
            self.engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                json_serializer=_json_text,
                connect_args=waits,
            )
        self.availability = Availability(url)
        if not self.is_sqlite:
            event.listen(self.engine, "handle_error", self._unavailable)
            event.listen(self.engine, "after_cursor_execute", self._answered)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _unavailable(self, context: ExceptionContext) -> None:
        """The storage boundary: no connection to be had (refused, timed out) or one cut under a statement becomes
        `StorageUnavailable`. Errors of a statement on a live connection (a deadlock, a serialization failure, a
        cancelled query: also `OperationalError`s) are left as they are: the database is there."""
        if context.is_pre_ping:
            return  # the pool answers a failed ping itself, by connecting afresh (which comes back here if it fails)
        if context.connection is None or context.is_disconnect:
            self.availability.failed(context.original_exception)
            unavailable = StorageUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_SECONDS)
            raise unavailable from context.sqlalchemy_exception

    def _answered(self, *_: Any) -> None:
        self.availability.answered()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent; safe to call on every start).

        A database already at the scripts' heads is left alone without running Alembic's upgrade (its environment
        and a migration context).
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
        except (OperationalError, StorageUnavailable) as exc:
            raise StorageUnavailable(f"database unreachable: {_redact(self.url)}") from exc

    def at_heads(self) -> bool:
        """True when the schema is at the newest revision of every migration branch."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except (OperationalError, ProgrammingError, StorageUnavailable):  # no such table yet, or no database
            return False
        return set(rows) == heads()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except (OperationalError, StorageUnavailable):
            return False

    def dispose(self) -> None:
        self.engine.dispose()


@functools.cache
def heads() -> frozenset[str]:
    """The newest revision of each branch of the migration scripts (one, since 0004 merged the two 0003s); read
    from the scripts by Alembic, once per process."""
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


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
