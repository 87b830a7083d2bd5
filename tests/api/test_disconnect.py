"""`unless_disconnected`: work whose client goes away is cancelled; work that finishes first is answered."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request
from starlette.types import Message

from labelwise.api.disconnect import ClientGone, unless_disconnected
from labelwise.errors import UpstreamUnavailable

pytestmark = pytest.mark.anyio


def _request(disconnect: asyncio.Event) -> Request:
    async def receive() -> Message:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def test_the_work_is_cancelled_when_the_client_leaves() -> None:
    gone = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()
        return "never"

    gone.set()
    with pytest.raises(ClientGone):
        await unless_disconnected(_request(gone), forever())
    assert cancelled.is_set()


async def test_an_answer_ready_first_is_returned_and_errors_keep_their_type() -> None:
    async def quick() -> str:
        return "done"

    async def failing() -> str:
        raise UpstreamUnavailable("down")

    assert await unless_disconnected(_request(asyncio.Event()), quick()) == "done"
    with pytest.raises(UpstreamUnavailable):
        await unless_disconnected(_request(asyncio.Event()), failing())
