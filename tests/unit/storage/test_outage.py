"""The storage boundary: a PostgreSQL that cannot be reached is `StorageUnavailable` (from the driver's error),
logged once per outage; an error of a statement on a live connection is not an outage. The outage of a real server,
stopped and started under a running `labelwise serve`, is tests/integration/test_postgres_outage.py."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from labelwise.errors import StorageUnavailable
from labelwise.storage.db import Database

NOBODY_LISTENS = "postgresql+psycopg://app:secret-pw@127.0.0.1:1/none"


def test_no_connection_is_storage_unavailable_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    db = Database(NOBODY_LISTENS)
    try:
        with caplog.at_level(logging.WARNING, logger="labelwise.storage.db"):
            for _ in range(3):
                with pytest.raises(StorageUnavailable) as info, db.session() as session:
                    session.execute(text("SELECT 1"))
                # The driver's error is the cause (SQLAlchemy chains the original DBAPI exception).
                assert type(info.value.__cause__).__name__ == "OperationalError"
                assert info.value.code == "storage_unavailable"
                assert info.value.details["retry_after"] >= 1
            assert not db.ping()
        logged = [r for r in caplog.records if r.getMessage().startswith("database unavailable")]
        assert len(logged) == 1
        assert "secret-pw" not in caplog.text
        assert logged[0].database == "postgresql+psycopg://app:***@127.0.0.1:1/none"  # type: ignore[attr-defined]
    finally:
        db.dispose()


def test_a_failing_statement_on_a_live_connection_is_no_outage(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(postgres_url)
    try:

        def cancelled() -> None:
            with db.session() as session:
                session.execute(text("SET LOCAL statement_timeout = 10"))
                session.execute(text("SELECT pg_sleep(1)"))

        with pytest.raises(OperationalError):  # QueryCanceled, one of the driver's OperationalErrors
            cancelled()
        assert db.ping()
        assert "database unavailable" not in caplog.text
    finally:
        db.dispose()
