"""Persistence: SQLAlchemy tables, repositories and Alembic migrations (SQLite by default, PostgreSQL by URL)."""

from labelwise.storage.db import Database

__all__ = ["Database"]
