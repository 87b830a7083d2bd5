"""SharedCalls: concurrent callers for one key share a call; a caller that goes away does not cancel it."""

from __future__ import annotations

import asyncio

import pytest

from labelwise.concurrency import SharedCalls
from labelwise.storage.db import _redact

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_concurrent_callers_share_one_call_and_its_failure() -> None:
    calls = SharedCalls[str, int]()
    started: list[str] = []
    release = asyncio.Event()

    async def work() -> int:
        started.append("x")
        await release.wait()
        return 7

    waiters = [asyncio.create_task(calls.call("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert calls.running("k")
    waiters[0].cancel()  # one caller leaves: the others still get the answer
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == [7] * 4
    assert started == ["x"]
    assert not calls.running("k")

    async def broken() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await calls.call("k", broken)
    assert await calls.call("k", work) == 7  # a new call once the last one ended
    assert started == ["x", "x"]


def test_database_urls_are_logged_without_their_password() -> None:
    assert _redact("postgresql+psycopg://bob:s3cr%40t@db:5432/x") == "postgresql+psycopg://bob:***@db:5432/x"
    assert _redact("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
