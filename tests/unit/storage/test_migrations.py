"""Migrations build the schema from an empty database, on SQLite and PostgreSQL, and are idempotent."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from labelwise.storage.db import Database, alembic_config
from labelwise.storage.tables import Base


def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert inspect(db.engine).get_table_names() == []
        db.migrate()
        tables = set(inspect(db.engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        assert "alembic_version" in tables
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
    import pytest

    from labelwise.errors import StorageError

    db = Database("postgresql+psycopg://nobody:secret-pw@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StorageError) as info:
        db.migrate()
    assert "secret-pw" not in str(info.value)
    assert "unreachable" in str(info.value)


def test_heads_constant_matches_the_migration_scripts(database_url: str) -> None:
    from alembic.script import ScriptDirectory

    from labelwise.storage.db import HEADS

    assert set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads()) == HEADS
    db = Database(database_url)
    try:
        assert not db.at_heads()  # empty database
        db.migrate()
        assert db.at_heads()
        with db.engine.begin() as conn:  # one branch behind: migrate must not skip
            config = alembic_config(database_url)
            config.attributes["connection"] = conn
            command.downgrade(config, "0003_jobs@-1")
        assert not db.at_heads()
        db.migrate()
        assert db.at_heads()
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
