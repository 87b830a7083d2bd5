"""Rate limits per API key and per client address, with the `limits` library.

Strategy: the moving window. It is exact (never more than N hits in any window of length T, so no double burst at
a window edge as with a fixed window), its Retry-After is precise (when the oldest hit leaves the window), and on
Redis both the hit and the window read are one atomic Lua script each. Its cost is memory: a window keeps one
timestamp per hit, so a key with `1000/minute` holds up to 1,000 entries (in process, or in one Redis list).

Storage: in process memory by default: limits' synchronous memory storage, called directly, since its operations
are a few list operations under a lock (the asynchronous variant hands its expiry sweep to a thread after nearly
every hit, which measured slower on the request path). With a Redis URL, every worker and replica shares one window
through limits' Redis storage: its Lua scripts make each hit atomic, so the count is exact under concurrency. If
Redis goes away, requests are limited per process (a warning is logged once) and a background ping every
`probe_seconds` switches back to Redis when it answers again: losing Redis never turns into a 5xx.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from limits import RateLimitItem, WindowStats, storage, strategies
from limits.errors import StorageError as LimitsStorageError

from labelwise.errors import ConfigError, InvalidRequest
from labelwise.rate_limit import parse_rate_limit

if TYPE_CHECKING:
    from limits.aio.storage import RedisStorage

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A hit must not wait long for a sick Redis: a socket timeout, then one retry on a fresh connection (a restarted
# Redis leaves stale pooled connections), then the process falls back to its own window. Not much shorter: the
# timeout also runs while a saturated event loop has not yet read a reply that has arrived, which is no outage.
_REDIS_TIMEOUT_SECONDS = 2.0
# Connections per process. A burst queues for a free one (no time limit: an exhausted pool is backpressure, not an
# outage, and each holder is bounded by the socket timeout); a script takes well under a millisecond in Redis.
_REDIS_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class WindowState:
    """One limit after a request: its size, its window in seconds, what is left, and seconds until more is."""

    amount: int
    window: int
    remaining: int
    reset: int

    @property
    def name(self) -> str:
        return f"{self.amount}-per-{self.window}s"


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether a request may proceed, the state of every limit that applies to it, and the one that refused it."""

    windows: tuple[WindowState, ...]
    refused: WindowState | None = None

    @property
    def allowed(self) -> bool:
        return self.refused is None

    @property
    def retry_after(self) -> int:
        """Seconds until the refusing limit has room again (at least 1)."""
        return max(1, self.refused.reset) if self.refused is not None else 0


class _Limiter(Protocol):
    """What the backend needs of a limiter: limits' async moving window has exactly this shape."""

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats: ...


class _LocalLimiter:
    """limits' moving window in process memory, behind the async interface (pure memory work: nothing to await)."""

    def __init__(self) -> None:
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return self._limiter.hit(item, *identifiers, cost=cost)

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return self._limiter.test(item, *identifiers, cost=cost)

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        return self._limiter.get_window_stats(item, *identifiers)


class LimiterBackend:
    """A moving-window limiter on Redis when configured, else (and while Redis is away) in process memory."""

    def __init__(
        self, redis_url: str | None = None, *, key_prefix: str = "labelwise", probe_seconds: float = 5.0
    ) -> None:
        self._local: _Limiter = _LocalLimiter()
        self._storage: RedisStorage | None = None
        self._shared: _Limiter | None = None
        # Failures that mean "Redis is not usable right now"; anything else is a bug and propagates.
        self._shared_errors: tuple[type[BaseException], ...] = ()
        if redis_url:
            # Imported only with a Redis URL: redis-py and limits' async storage add 0.2 s to every start.
            from limits.aio.strategies import MovingWindowRateLimiter
            from redis.exceptions import RedisError

            self._storage = _redis_storage(redis_url, key_prefix)
            self._shared = MovingWindowRateLimiter(self._storage)
            self._shared_errors = (LimitsStorageError, RedisError, OSError)
        self.probe_seconds = probe_seconds
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probe: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """True while limits are shared through Redis (configured and reachable as far as we know)."""
        return self._shared is not None and self._down_since is None

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        return await self._run(lambda limiter: limiter.hit(item, *identifiers, cost=cost))

    async def test(self, item: RateLimitItem, *identifiers: str) -> bool:
        return await self._run(lambda limiter: limiter.test(item, *identifiers))

    async def state(self, item: RateLimitItem, *identifiers: str) -> WindowState:
        stats = await self._run(lambda limiter: limiter.get_window_stats(item, *identifiers))
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return WindowState(item.amount, item.get_expiry(), max(0, stats.remaining), reset)

    async def _run(self, operation: Callable[[_Limiter], Awaitable[T]]) -> T:
        if self._shared is not None and self._down_since is None:
            try:
                return await operation(self._shared)
            except self._shared_errors as exc:
                self._lost(exc)
        elif self._shared is not None:
            self._maybe_probe()
        return await operation(self._local)

    def _lost(self, exc: BaseException) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._next_probe = self._down_since + self.probe_seconds
        logger.warning(
            "Redis unreachable: rate limits are per process until it answers again",
            extra={"error": _error_name(exc), "probe_seconds": self.probe_seconds},
        )

    def _maybe_probe(self) -> None:
        # Requests never wait for the probe: it runs beside them and flips the switch when Redis answers.
        now = time.monotonic()
        if now < self._next_probe or (self._probe is not None and not self._probe.done()):
            return
        self._next_probe = now + self.probe_seconds
        self._probe = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        assert self._storage is not None
        if await self._storage.check() and self._down_since is not None:
            down_for = time.monotonic() - self._down_since
            self._down_since = None
            logger.info("Redis is back: rate limits are shared again", extra={"down_seconds": round(down_for, 1)})

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self._storage is not None:
            bridge: Any = self._storage.bridge  # the redis-py bridge, over the pool made in `_redis_storage`
            client = bridge.get_connection()
            await client.aclose()
            await client.connection_pool.disconnect()


def _error_name(exc: BaseException) -> str:
    """`StorageError(TimeoutError)` style: limits wraps the client's error, and the inner one is what tells."""
    inner = exc.storage_error if isinstance(exc, LimitsStorageError) else None
    return f"{type(exc).__name__}({type(inner).__name__})" if inner is not None else type(exc).__name__


def _redis_storage(url: str, key_prefix: str) -> RedisStorage:
    scheme = url.split("://", 1)[0]
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"redis_url: scheme {scheme!r}; use redis://, rediss:// or unix://")
    from limits.aio.storage import RedisStorage
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    pool: Any = BlockingConnectionPool.from_url(
        url,
        max_connections=_REDIS_CONNECTIONS,
        timeout=None,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 1),
    )
    options: dict[str, Any] = {"connection_pool": pool}
    return RedisStorage(
        "async+" + url.replace("unix://", "redis+unix://", 1),
        wrap_exceptions=True,
        implementation="redispy",
        key_prefix=key_prefix,
        **options,
    )


class RequestLimiter:
    """Per-key request limits (the key's own, else the default) and a cap on failed logins per client address."""

    def __init__(
        self,
        backend: LimiterBackend,
        *,
        default_limit: str | None = None,
        auth_failures: str | None = None,
        token_limit: str | None = None,
    ) -> None:
        self.backend = backend
        self.tokens = tuple(parse_rate_limit(token_limit, param="llm_token_rate_limit")) if token_limit else ()
        self.default = tuple(parse_rate_limit(default_limit, param="default_rate_limit")) if default_limit else ()
        self.failures = tuple(parse_rate_limit(auth_failures, param="auth_failure_limit")) if auth_failures else ()
        self._parsed: dict[str, tuple[RateLimitItem, ...]] = {}

    def items(self, limit: str | None) -> tuple[RateLimitItem, ...]:
        """The limits for a key's stored setting (None: the default), parsed once per distinct setting."""
        if limit is None:
            return self.default
        items = self._parsed.get(limit)
        if items is None:
            # Stored settings were validated when written; a bad one (edited by hand) must not take the API down.
            try:
                items = tuple(parse_rate_limit(limit))
            except InvalidRequest:
                logger.error("unusable stored rate limit; applying the default", extra={"rate_limit": limit[:80]})
                items = self.default
            if len(self._parsed) > 10_000:
                self._parsed.clear()
            self._parsed[limit] = items
        return items

    async def check_key(self, prefix: str, limit: str | None) -> RateDecision | None:
        """Count one request for the key; None when it has no limit at all."""
        items = self.items(limit)
        return await self._hit_all(items, "key", prefix) if items else None

    async def check_address(self, address: str) -> RateDecision | None:
        """A refusal when `address` has failed authentication too often recently; None when it may try."""
        for index, item in enumerate(self.failures):
            if not await self.backend.test(item, "auth-failures", address):
                states = tuple([await self.backend.state(i, "auth-failures", address) for i in self.failures])
                return RateDecision(states, states[index])
        return None

    async def check_tokens(self, prefix: str) -> RateDecision | None:
        """A refusal when the key has used up a window of its language-model token allowance; None when it may go
        on. Tokens are counted after each generation (`spend_tokens`), when the upstream has said how many."""
        for index, item in enumerate(self.tokens):
            if not await self.backend.test(item, "tokens", prefix):
                states = tuple([await self.backend.state(i, "tokens", prefix) for i in self.tokens])
                return RateDecision(states, states[index])
        return None

    async def spend_tokens(self, prefix: str, tokens: int) -> None:
        """Count `tokens` generated for the key. A window takes at most what it has left (a moving window refuses,
        and so would not count, a hit larger than that): a generation that goes over fills it, and the key's next
        request is refused until enough of its tokens have aged out of the window."""
        for item in self.tokens:
            left = (await self.backend.state(item, "tokens", prefix)).remaining
            if min(tokens, left) > 0:
                await self.backend.hit(item, "tokens", prefix, cost=min(tokens, left))

    async def record_failure(self, address: str) -> None:
        for item in self.failures:
            await self.backend.hit(item, "auth-failures", address)

    async def _hit_all(self, items: Sequence[RateLimitItem], *identifiers: str) -> RateDecision:
        refused: int | None = None
        for index, item in enumerate(items):
            # Stop at the first refusal: a refused request takes nothing from the limits after it.
            if not await self.backend.hit(item, *identifiers):
                refused = index
                break
        states = tuple([await self.backend.state(item, *identifiers) for item in items])
        return RateDecision(states, states[refused] if refused is not None else None)

    async def close(self) -> None:
        await self.backend.close()
