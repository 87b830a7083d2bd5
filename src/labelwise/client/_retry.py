"""When to retry a request and how long to wait first: exponential backoff with jitter, `Retry-After` first.

Retried: 429 and 503 answers (the server refused before doing or billing anything), a connection that could not be
opened (nothing was sent), and, for idempotent reads only, a connection that broke or timed out mid-request. Any
other 4xx is the caller's to fix and is never retried.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_retries` retries; waits `base_delay * 2**attempt` (capped at `max_delay`), minus up to a
    quarter of jitter so clients refused together do not come back together. A `Retry-After` the server sent wins,
    up to `max_retry_after` seconds."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries: {self.max_retries}, must be 0 or more")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt + 1` (attempt counts from 0)."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        backoff = min(self.max_delay, self.base_delay * (2.0**attempt))
        return backoff * (1.0 - 0.25 * random.random())

    def retries_status(self, status: int) -> bool:
        return status in RETRY_STATUSES

    def retries_error(self, exc: httpx.TransportError, method: str) -> bool:
        """A connection that never opened is safe to retry for any method; a broken one only for reads."""
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return True
        return method.upper() in IDEMPOTENT_METHODS
