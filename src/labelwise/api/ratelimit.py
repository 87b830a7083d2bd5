"""Rate limiting at the ASGI level, before any body is read: per key (after auth), and per client address for
failed authentication (before the key check).

Responses carry the IETF RateLimit header fields as defined by draft-ietf-httpapi-ratelimit-headers-09
(https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/09/, March 2025), on successes as well as
on 429s: `RateLimit-Policy` lists each policy as a quoted name with `q` (its quota) and `w` (its window in
seconds); `RateLimit` gives each policy's `r` (quota remaining) and `t` (seconds until it resets). For example:

    RateLimit-Policy: "100-per-60s";q=100;w=60
    RateLimit: "100-per-60s";r=42;t=17

A 429 adds `Retry-After` (RFC 9110), the seconds until an exhausted policy has room again.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelwise.api.errors import labelwise_error_response
from labelwise.api.middleware import state_of
from labelwise.errors import RateLimited
from labelwise.services.keys import Principal
from labelwise.services.limits import RateDecision, RequestLimiter


def rate_headers(decision: RateDecision) -> list[tuple[bytes, bytes]]:
    """The `RateLimit-Policy` and `RateLimit` fields for a decision (structured-field lists, one item a policy)."""
    policy = ", ".join(f'"{w.name}";q={w.amount};w={w.window}' for w in decision.windows)
    current = ", ".join(f'"{w.name}";r={w.remaining};t={w.reset}' for w in decision.windows)
    return [(b"ratelimit-policy", policy.encode()), (b"ratelimit", current.encode())]


def too_many_requests(
    decision: RateDecision, message: str, request_id: str | None, path: str | None = None
) -> Response:
    """429 `TOO_MANY_REQUESTS` in the native error shape, with Retry-After and the RateLimit fields."""
    retry_after = decision.retry_after
    exc = RateLimited(f"{message}; retry after {retry_after} s", retry_after=retry_after)
    response = labelwise_error_response(exc, request_id, path)
    response.raw_headers.extend(rate_headers(decision))
    return response


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Counts each authenticated request against its key's limits; 429 when over, RateLimit fields always."""

    def __init__(self, app: ASGIApp, *, limiter: RequestLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal | None = state_of(scope).get("principal") if scope["type"] == "http" else None
        if principal is None:  # public paths (and non-HTTP scopes) are not limited per key
            await self.app(scope, receive, send)
            return
        decision = await self.limiter.check_key(principal.prefix, principal.rate_limit)
        if decision is None:
            await self.app(scope, receive, send)
            return
        if decision.refused is not None:
            limit = decision.refused
            message = f"rate limit exceeded: {limit.amount} requests per {limit.window} s for this key"
            request_id = state_of(scope).get("request_id")
            await too_many_requests(decision, message, request_id, scope["path"])(scope, receive, send)
            return
        headers = rate_headers(decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class AuthFailureGuard:
    """Refuses a client address that failed authentication too often, before its key is even looked up."""

    def __init__(self, limiter: RequestLimiter) -> None:
        self.limiter = limiter

    async def refusal(self, scope: Scope) -> Response | None:
        decision = await self.limiter.check_address(client_address(scope))
        if decision is None:
            return None
        message = "too many failed authentication attempts from this address"
        return too_many_requests(decision, message, state_of(scope).get("request_id"), scope["path"])

    async def failed(self, scope: Scope) -> None:
        await self.limiter.record_failure(client_address(scope))
