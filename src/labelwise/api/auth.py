"""API key authentication as pure ASGI middleware, decided from the headers before any body is read.

Keys are accepted as `x-api-key: KEY`, `Authorization: Bearer KEY` and `Authorization: Token KEY`. Every failure
(missing, malformed, unknown, revoked, disabled, expired) gets the same 401 body, so a caller learns nothing about
which it was. A valid key without the route's scope gets 403.

Verified keys are cached for a few seconds, keyed by the SHA-256 of the key, so the database is asked once per key
per TTL instead of on every request; a revoked key therefore stops working within `ttl_seconds`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from starlette.types import ASGIApp, Receive, Scope, Send

from labelwise.api.errors import UNAUTHORIZED_MESSAGE, labelwise_error_response
from labelwise.api.middleware import header, state_of
from labelwise.api.ratelimit import AuthFailureGuard
from labelwise.errors import Forbidden, Unauthorized
from labelwise.services.keys import KeyService, Principal, hash_key
from labelwise.services.keys import Scope as KeyScope

PUBLIC_PATHS = frozenset({"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc", "/"})
# The web UI's static files: the page needs no key; its data comes from the API with the key the user pastes.
PUBLIC_PREFIXES = ("/ui/",)
# Paths whose scope a prefix cannot express; matched (whole path) before ROUTE_SCOPES.
PATTERN_SCOPES: Sequence[tuple[re.Pattern[str], str]] = (
    (re.compile(r"/v1/models/[^/]+/aliases(?:/.*)?"), KeyScope.ADMIN.value),
)
# (method, path) pairs whose scope depends on the method; matched before the patterns and prefixes below.
METHOD_SCOPES: Sequence[tuple[str, str, str]] = (
    ("POST", "/v1/models", KeyScope.TRAIN.value),
    ("POST", "/v1/jobs", KeyScope.CLASSIFY.value),
)
# Path prefixes and the scope they need; a path not listed needs only a valid key (the router then answers 404).
ROUTE_SCOPES: Sequence[tuple[str, str]] = (
    ("/v1/classify", KeyScope.CLASSIFY.value),
    ("/v1/batch", KeyScope.CLASSIFY.value),
    ("/v1/models", KeyScope.CLASSIFY.value),
    ("/v1/keys", KeyScope.ADMIN.value),
    ("/v1/embeddings", KeyScope.CLASSIFY.value),
    ("/classify", KeyScope.CLASSIFY.value),
    ("/invocations", KeyScope.CLASSIFY.value),
    ("/pooling", KeyScope.CLASSIFY.value),
    ("/text/classification", KeyScope.CLASSIFY.value),
    ("/classification", KeyScope.CLASSIFY.value),
)
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


def required_scope(path: str, method: str | None = None) -> str | None:
    for verb, exact, needed in METHOD_SCOPES:
        if method == verb and path.rstrip("/") == exact:
            return needed
    for pattern, needed in PATTERN_SCOPES:
        if pattern.fullmatch(path):
            return needed
    for prefix, scope in ROUTE_SCOPES:
        if path == prefix or path.startswith(prefix + "/"):
            return scope
    return None


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
        self._lookups: dict[str, asyncio.Task[Principal | None]] = {}

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
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.get_running_loop().create_task(self._lookup(digest, key))
            lookup.add_done_callback(_seen)  # a failure nobody waits for any more is not reported as lost
            self._lookups[digest] = lookup
        # Shielded: a caller that goes away (client disconnected) does not cancel the others' lookup.
        return await asyncio.shield(lookup)

    async def _lookup(self, digest: str, key: str) -> Principal | None:
        try:
            principal = await asyncio.to_thread(self.keys.verify, key)
        finally:
            del self._lookups[digest]
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


def _seen(task: asyncio.Task[Principal | None]) -> None:
    if not task.cancelled():
        task.exception()


def _expired(principal: Principal) -> bool:
    return principal.expires_at is not None and principal.expires_at <= datetime.now(UTC)


class AuthMiddleware:
    """Lets public paths through; otherwise needs a valid key, and the route's scope where it has one.

    With a `guard`, a client address that failed authentication too often gets 429 before its key is looked up.
    A key already held valid in the verifier's cache skips that check: the common path stays free of I/O.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: KeyVerifier,
        public_paths: frozenset[str] = PUBLIC_PATHS,
        guard: AuthFailureGuard | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.public_paths = public_paths
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths or scope["path"].startswith(PUBLIC_PREFIXES):
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
        needed = required_scope(scope["path"], scope.get("method"))
        if needed is not None and not principal.allows(needed):
            exc = Forbidden(f"this key lacks the {needed!r} scope that {scope['path']} needs")
            await labelwise_error_response(exc, state.get("request_id"), scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)
