"""API key authentication as pure ASGI middleware, decided from the headers before any body is read.

Keys are accepted as `x-api-key: KEY`, `Authorization: Bearer KEY` and `Authorization: Token KEY`. Every failure
(missing, malformed, unknown, revoked, disabled, expired) gets the same 401 body, so a caller learns nothing about
which it was. What each route needs is declared beside its handler (see api/access.py); a valid key without the
route's scope gets 403, and so does any key on a route that declares nothing.

Verified keys are cached for a few seconds, keyed by the SHA-256 of the key, so the database is asked once per key
per TTL instead of on every request; a revoked key therefore stops working within `ttl_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from labelwise.api.access import Access, AccessTable, route_path
from labelwise.api.errors import UNAUTHORIZED_MESSAGE, labelwise_error_response
from labelwise.api.middleware import header, state_of
from labelwise.api.ratelimit import AuthFailureGuard
from labelwise.concurrency import SharedCalls
from labelwise.errors import Forbidden, StorageUnavailable, Unauthorized
from labelwise.services.keys import KeyService, Principal, hash_key

_MAX_KEY_CHARS = 256
_SCHEMES = (b"bearer", b"token")


def extract_key(scope: Scope) -> str | None:
    """The key from `x-api-key` or `Authorization: Bearer|Token`, or None when absent or malformed."""
    raw = header(scope, b"x-api-key")
    if raw is None:
        authorization = header(scope, b"authorization")
        if authorization is None:
            return None
        scheme, _, raw = authorization.strip().partition(b" ")
        if scheme.lower() not in _SCHEMES:
            return None
    key = raw.strip()
    if not key or len(key) > _MAX_KEY_CHARS:
        return None
    return key.decode("latin-1")


class KeyVerifier:
    """`KeyService.verify` behind a short-lived cache; the database call runs in a thread, off the event loop.

    Requests that find a key's entry missing or expired at the same moment share one lookup: without that, every
    request arriving while the first lookup ran queried the database too, each in a thread of the same small pool
    (at 64 connections, dozens of queries every TTL and a visible bump in tail latency).
    """

    def __init__(self, keys: KeyService, *, ttl_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self.keys = keys
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lookups: SharedCalls[str, Principal | None] = SharedCalls()

    def cached(self, key: str) -> Principal | None:
        """The principal of a key this cache holds as valid, without any I/O; None if unknown or invalid."""
        hit = self._cache.get(hash_key(key))
        if hit is None or hit[0] is None or hit[1] <= time.monotonic() or _expired(hit[0]):
            return None
        return hit[0]

    async def verify(self, key: str) -> Principal | None:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            # A key that expires while cached stops working at its expiry, not up to a TTL later.
            return None if hit[0] is None or _expired(hit[0]) else hit[0]
        return await self._lookups.call(digest, lambda: self._lookup(digest, key))

    async def _lookup(self, digest: str, key: str) -> Principal | None:
        try:
            principal = await asyncio.to_thread(self.keys.verify, key)
        except StorageUnavailable:
            held = self._cache.get(digest)
            if held is None or held[0] is None:
                raise
            # The database is away: a key this process verified before keeps working for another TTL (a revocation
            # meanwhile takes effect when the database is back); any other key gets the 503.
            principal = held[0]
        now = time.monotonic()
        if len(self._cache) >= self.max_entries:
            self._evict(now)
        # Failures are cached too, so a client hammering with a bad key costs one query per TTL, not per request.
        self._cache[digest] = (principal, now + self.ttl)
        return principal

    def _evict(self, now: float) -> None:
        for digest in [d for d, (_, expires) in self._cache.items() if expires <= now]:
            del self._cache[digest]
        while len(self._cache) >= self.max_entries:
            del self._cache[next(iter(self._cache))]  # oldest insertion first

    def forget(self) -> None:
        self._cache.clear()


def _expired(principal: Principal) -> bool:
    return principal.expires_at is not None and principal.expires_at <= datetime.now(UTC)


class AuthMiddleware:
    """Lets public routes through; otherwise needs a valid key, and the route's scope where it declares one.

    With a `guard`, a client address that failed authentication too often gets 429 before its key is looked up.
    A key already held valid in the verifier's cache skips that check: the common path stays free of I/O.
    `overrides` replace the declarations of whole paths (`/metrics` is public when `metrics_public` is set).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: KeyVerifier,
        overrides: Mapping[str, Access] | None = None,
        guard: AuthFailureGuard | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.table = AccessTable(overrides)
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        access = self.table.lookup(scope["app"], route_path(scope), scope["method"])
        if access is not None and access.public:
            await self.app(scope, receive, send)
            return
        state = state_of(scope)
        key = extract_key(scope)
        principal = self.verifier.cached(key) if key is not None else None
        if principal is None and self.guard is not None:
            refusal = await self.guard.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if principal is None and key is not None:
            principal = await self.verifier.verify(key)
        if principal is None:
            if self.guard is not None:
                await self.guard.failed(scope)
            exc: Unauthorized | Forbidden = Unauthorized(UNAUTHORIZED_MESSAGE)
            await labelwise_error_response(exc, state.get("request_id"), scope["path"])(scope, receive, send)
            return
        state["key_prefix"] = principal.prefix
        state["principal"] = principal
        if access is None:
            exc = Forbidden(f"{scope['path']} declares no access rule, so no key may call it")
        elif access.scope is not None and not principal.allows(access.scope):
            exc = Forbidden(f"this key lacks the {access.scope!r} scope that {scope['path']} needs")
        else:
            await self.app(scope, receive, send)
            return
        await labelwise_error_response(exc, state.get("request_id"), scope["path"])(scope, receive, send)
