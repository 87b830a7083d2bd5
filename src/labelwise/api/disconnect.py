"""Work that stops when the client goes away.

Uvicorn does not cancel a handler whose client disconnected: a slow upstream call would run, and be billed, to the
end for nobody. `unless_disconnected` runs the work beside a watcher of the ASGI `receive` channel (which, once the
body is read, yields only `http.disconnect`), and cancels the work when the client leaves first. Streaming
responses need none of this: Starlette cancels a `StreamingResponse`'s iteration on disconnect by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

import anyio
from fastapi import Request

from labelwise.errors import LabelwiseError

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ClientGone(LabelwiseError):
    """The client disconnected before the answer was ready (nginx's 499: nobody reads it; the access log does)."""

    code = "client_closed_request"
    http_status = 499


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """The result of `work`; `ClientGone` if the client disconnects first (the work is cancelled then)."""
    results: list[T] = []
    errors: list[Exception] = []

    async def run(scope: anyio.CancelScope) -> None:
        try:
            results.append(await work)
        except Exception as exc:  # raised below as itself, not inside the task group's ExceptionGroup
            errors.append(exc)
        scope.cancel()

    async def watch(scope: anyio.CancelScope) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async with anyio.create_task_group() as group:
        group.start_soon(run, group.cancel_scope)
        group.start_soon(watch, group.cancel_scope)
    if errors:
        raise errors[0]
    if not results:
        logger.info("generation stopped: the client went away")
        raise ClientGone("the client closed the connection before the answer was ready")
    return results[0]
