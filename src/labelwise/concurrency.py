"""One call shared by concurrent callers that ask for the same thing (a key's verification, a model's load)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCalls(Generic[K, V]):
    """The first caller for `key` starts the call; callers that arrive while it runs await the same task.

    The task is shielded: a caller that goes away (a client that disconnected) does not cancel it for the others.
    Its failure reaches every caller waiting; one nobody waits for any more is not reported as lost. Once it ends,
    the next caller for `key` starts a new call.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def call(self, key: K, start: Callable[[], Awaitable[V]]) -> V:
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._run(key, start))
            task.add_done_callback(_seen)
            self._running[key] = task
        return await asyncio.shield(task)

    def running(self, key: K) -> bool:
        return key in self._running

    async def _run(self, key: K, start: Callable[[], Awaitable[V]]) -> V:
        try:
            return await start()
        finally:
            del self._running[key]


def _seen(task: asyncio.Task[V]) -> None:
    if not task.cancelled():
        task.exception()
