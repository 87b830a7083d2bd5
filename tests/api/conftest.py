"""Fixtures for API tests: a real app on SQLite and PostgreSQL (the root `database_url`), via httpx.ASGITransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, Running, make_settings, reset_keyword_engine, started


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def keyword_engine() -> None:
    reset_keyword_engine()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def fx(settings: Settings) -> Iterator[Fixture]:
    fixture = Fixture(settings)
    yield fixture
    fixture.close()


@pytest.fixture
async def running(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    """The app serving one published model, `intents` (keyword engine)."""
    fx.publish("intents")
    async with started(settings) as item:
        yield item


@pytest.fixture
def key(fx: Fixture) -> str:
    return fx.key("classify")


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"x-api-key": key}
