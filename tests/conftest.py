"""Fixtures shared by every test: databases (SQLite and PostgreSQL), settings, the shared datasets."""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text

from labelwise.config import Settings
from labelwise.storage.db import Database

if TYPE_CHECKING:
    from labelwise.encoder import LazyEncoder

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """Where the public datasets live: $LABELWISE_SHARED_DATA or ../shared/data beside the repository."""
    return Path(os.environ.get("LABELWISE_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared datasets not found at {path} (set LABELWISE_SHARED_DATA)")
    return path


def encoder_cache_dir() -> Path:
    """One derived encoder model for every test run on this machine (building it takes tens of seconds)."""
    return Path(
        os.environ.get("LABELWISE_TEST_ENCODER_CACHE") or Path(tempfile.gettempdir()) / "labelwise-test-encoder"
    )


@functools.cache
def shared_encoder() -> LazyEncoder:
    """The encoder engines under test are given (loaded on first use, shared by every test of the run)."""
    from labelwise.encoder import LazyEncoder

    return LazyEncoder(encoder_cache_dir())


@pytest.fixture(autouse=True, scope="session")
def _shared_encoder_cache() -> None:
    # Apps under test build their encoder from their settings (create_app): point those at the shared model.
    os.environ.setdefault("LABELWISE_ENCODER_DIR", str(encoder_cache_dir()))


def postgres_base_url() -> str | None:
    return os.environ.get("LABELWISE_TEST_POSTGRES_URL") or None


@contextmanager
def fresh_postgres_schema() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema, dropped afterwards. Fails (not skips) when unreachable."""
    base = postgres_base_url()
    if base is None:
        if os.environ.get("LABELWISE_REQUIRE_SERVICES"):
            pytest.fail("LABELWISE_TEST_POSTGRES_URL is not set")
        pytest.skip("LABELWISE_TEST_POSTGRES_URL is not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # any driver error means the service is not usable
        pytest.fail(f"PostgreSQL at LABELWISE_TEST_POSTGRES_URL is unreachable: {type(exc).__name__}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema, dropped afterwards. Fails (not skips) when unreachable."""
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labelwise.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings pointing at a temporary data directory and the parametrized database."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def llm_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The OpenAI base URL of a real llama.cpp server with SmolLM2-135M-Instruct, one for the whole session."""
    from tests.llm_upstream import llama_server

    with llama_server(tmp_path_factory.mktemp("llm") / "llama-server.log") as base:
        yield base
