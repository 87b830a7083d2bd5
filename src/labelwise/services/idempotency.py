"""`Idempotency-Key` on requests that create things: the same key and body replays the first answer.

The same key with another body is refused (422), and a repeat that arrives while the first is still running gets
409. Keys belong to the API key that sent them and are kept at least 24 hours. The body hash is computed by the
caller over what defines the request (form fields and the uploaded file's SHA-256 for uploads), so two clients that
encode the same multipart request differently still match.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from labelwise.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from labelwise.storage.jobs_repository import IdempotencyRepository

MAX_KEY_CHARS = 255
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Replay:
    """The stored first answer to a repeated request."""

    status: int
    body: dict[str, Any]


def body_hash(fields: Mapping[str, Any]) -> str:
    """A stable SHA-256 of a request's defining fields."""
    return hashlib.sha256(orjson.dumps(dict(fields), option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


class IdempotencyService:
    """Reserve a key before doing the work, then store the answer (or release the key when the work failed)."""

    def __init__(self, repo: IdempotencyRepository) -> None:
        self.repo = repo

    async def begin(self, key_prefix: str, idem_key: str, digest: str) -> Replay | None:
        """None: go ahead (the key is now reserved); a `Replay`: answer with it instead."""
        if not idem_key or len(idem_key) > MAX_KEY_CHARS:
            raise InvalidRequest(f"Idempotency-Key: 1 to {MAX_KEY_CHARS} characters", param="Idempotency-Key")
        stored = await asyncio.to_thread(self.repo.reserve, key_prefix, idem_key, digest)
        if stored is None:
            return None
        if stored.body_hash != digest:
            raise IdempotencyKeyReused(
                "Idempotency-Key: already used with a different request body", param="Idempotency-Key"
            )
        if stored.status is None or stored.response is None:
            raise Conflict("Idempotency-Key: a request with this key is still in progress", param="Idempotency-Key")
        return Replay(stored.status, stored.response)

    async def once(
        self, key_prefix: str, idem_key: str, digest: str, work: Callable[[], Awaitable[tuple[T, Replay]]]
    ) -> T | Replay:
        """Run `work` once for this key: its answer, or for a repeat the `Replay` it stored.

        `work` returns its answer and what a repeat should get, which need not be the same: a response holding
        something that must not be stored (a new key's secret) stores a version without it. When `work` raises,
        the key is released, so that a retry runs again.
        """
        replay = await self.begin(key_prefix, idem_key, digest)
        if replay is not None:
            return replay
        try:
            answer, stored = await work()
        except BaseException:
            await self.release(key_prefix, idem_key)
            raise
        await self.finish(key_prefix, idem_key, stored.status, stored.body)
        return answer

    async def finish(self, key_prefix: str, idem_key: str, status: int, body: dict[str, Any]) -> None:
        await asyncio.to_thread(self.repo.store, key_prefix, idem_key, status, body)

    async def release(self, key_prefix: str, idem_key: str) -> None:
        await asyncio.to_thread(self.repo.release, key_prefix, idem_key)
