"""`Idempotency-Key` on requests that create things: the same key and body replays the first answer.

The same key with another body is refused (422), and a repeat that arrives while the first is still running gets
409. Keys belong to the API key that sent them and are kept at least 24 hours. The body hash is computed by the
caller over what defines the request (form fields and the uploaded file's SHA-256 for uploads), so two clients that
encode the same multipart request differently still match.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from labelwise.errors import Conflict, IdempotencyKeyReused, InvalidRequest
from labelwise.storage.jobs_repository import IdempotencyRepository

MAX_KEY_CHARS = 255


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

    async def finish(self, key_prefix: str, idem_key: str, status: int, body: dict[str, Any]) -> None:
        await asyncio.to_thread(self.repo.store, key_prefix, idem_key, status, body)

    async def release(self, key_prefix: str, idem_key: str) -> None:
        await asyncio.to_thread(self.repo.release, key_prefix, idem_key)
