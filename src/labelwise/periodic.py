"""A background task that runs one step every few seconds inside the event loop, for the buffered writers
(usage ledger, prediction log) and refreshers (drift gauge) that must never take the server down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from labelwise.errors import StorageUnavailable

logger = logging.getLogger(__name__)


class Periodic:
    """Awaits `step()` every `seconds`; a failing step is logged as a warning and tried again next time."""

    def __init__(
        self,
        step: Callable[[], Awaitable[object]],
        seconds: float,
        *,
        name: str,
        failure: str,
        context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.step = step
        self.seconds = seconds
        self.name = name
        self.failure = failure
        self.context = context
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (call from inside the running event loop); a second call does nothing."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has stopped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            try:
                await self.step()
            except StorageUnavailable:
                continue  # the database logs its outage once; the step is tried again next time
            except Exception:
                extra = self.context() if self.context is not None else None
                logger.warning(self.failure, exc_info=True, extra=extra)
