"""Migrations build the schema from an empty database, on SQLite and PostgreSQL, and are idempotent."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from labelwise.storage.db import Database, alembic_config, heads
from labelwise.storage.tables import Base


def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert inspect(db.engine).get_table_names() == []
        db.migrate()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
        assert _versions(db) == heads()  # one row: the merged head
        db.migrate()  # a second start finds nothing to do
    finally:
        db.dispose()


def test_schema_matches_models_after_migration(database_url: str) -> None:
    """Autogenerate finds no difference: every table change came with a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    db = Database(database_url)
    try:
        db.migrate()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.dispose()


def test_downgrade_to_base_and_back(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.migrate()
        with db.engine.begin() as conn:
            config = alembic_config(database_url)
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        db.migrate()
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_unreachable_database_is_a_clear_error() -> None:
    from labelwise.errors import StorageError

    db = Database("postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageError) as info:
        db.migrate()
    assert "secret-pw" not in str(info.value)
    assert "unreachable" in str(info.value)


def _versions(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def test_one_head_read_from_the_scripts() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()
    assert heads() == set(script.get_heads())


@pytest.mark.parametrize(
    "stamped",
    [("0003_jobs",), ("0003_monitoring",), ("0003_jobs", "0003_monitoring")],
    ids=["jobs-only", "monitoring-only", "both-branches"],
)
def test_database_at_an_old_head_upgrades(database_url: str, stamped: tuple[str, ...]) -> None:
    """A database migrated before the merge, on one branch or on both (every database made by 0003), reaches the
    one head on the next start; one branch behind is not mistaken for up to date."""
    db = Database(database_url)
    try:
        with db.engine.begin() as conn:
            config = alembic_config(database_url)
            config.attributes["connection"] = conn
            for revision in stamped:
                command.upgrade(config, revision)
        assert _versions(db) == set(stamped)
        assert not db.at_heads()
        db.migrate()
        assert db.at_heads()
        assert _versions(db) == heads()
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
