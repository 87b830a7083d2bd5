"""The client's exception tree, and the one place where HTTP answers and httpx errors become it.

Every error a `Client` raises is a `LabelwiseAPIError` carrying what the server said: its `code`, `message`,
`param`, the HTTP `status_code` and the `request_id` to quote in a report. Both error shapes the server speaks are
understood: the native `{"error": {code, message, param, request_id}}` and the OpenAI `{"error": {message, type,
param, code}}` of the compatible routes (and the flat `{"error": "message", "code": "CODE"}` of the categories API).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "InsufficientBalanceError",
    "LabelwiseAPIError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
]


class LabelwiseAPIError(Exception):
    """Base class of every client error: the server's code, message and field, the status and the request id."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.status_code = status_code
        self.request_id = request_id
        self.error_type = error_type
        self.retry_after = retry_after

    def __str__(self) -> str:
        head = f"{self.code}: {self.message}" if self.code else self.message
        extras = []
        if self.status_code is not None:
            extras.append(f"HTTP {self.status_code}")
        if self.request_id:
            extras.append(f"request id {self.request_id}")
        return f"{head} ({', '.join(extras)})" if extras else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, code={self.code!r}, param={self.param!r}, "
            f"status_code={self.status_code!r}, request_id={self.request_id!r})"
        )


class BadRequestError(LabelwiseAPIError):
    """400, 413 or 422: the request itself is at fault; `param` names the field."""


class AuthenticationError(LabelwiseAPIError):
    """401: a missing, unknown, revoked, disabled or expired API key."""


class InsufficientBalanceError(LabelwiseAPIError):
    """402: the key's credits do not cover the request; nothing was charged."""


class PermissionDeniedError(LabelwiseAPIError):
    """403: the key lacks the scope the route needs."""


class NotFoundError(LabelwiseAPIError):
    """404: no such model, alias, version or route."""


class RateLimitError(LabelwiseAPIError):
    """429: over the key's rate limit; `retry_after` says how many seconds to wait."""


class ServiceUnavailableError(LabelwiseAPIError):
    """503: the server is overloaded or a dependency is down; `retry_after` says when to come back."""


class APIConnectionError(LabelwiseAPIError):
    """The server could not be reached, or the connection broke before an answer came."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""


_BY_STATUS: Mapping[int, type[LabelwiseAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _fields(body: Any) -> dict[str, str | None]:
    """code, message, param, request_id and type from any of the server's error shapes ({} when none fits)."""
    if not isinstance(body, Mapping):
        return {}
    error = body.get("error")
    if isinstance(error, Mapping):  # native or OpenAI shape
        code = error.get("code")
        return {
            "code": _text(code) or (str(code) if isinstance(code, int) else None) or _text(error.get("type")),
            "message": _text(error.get("message")),
            "param": _text(error.get("param")),
            "request_id": _text(error.get("request_id")),
            "type": _text(error.get("type")),
        }
    if isinstance(error, str):  # categories API: {"error": "message", "code": "CODE"}
        return {"code": _text(body.get("code")), "message": error}
    return {}


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        from datetime import UTC, datetime

        seconds = (when - datetime.now(UTC)).total_seconds() if when.tzinfo else 0.0
    return max(0.0, seconds)


def scrub(text: str, secret: str | None) -> str:
    """`text` with the API key replaced, in case anything ever echoed it."""
    return text.replace(secret, "***") if secret and len(secret) >= 4 else text


def error_from_response(response: httpx.Response, *, api_key: str | None = None) -> LabelwiseAPIError:
    """The exception for an error answer: the class follows the status, the fields the body (or the headers)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    fields = _fields(body)
    status = response.status_code
    message = fields.get("message") or f"HTTP {status} {response.reason_phrase}".strip()
    cls = _BY_STATUS.get(status, LabelwiseAPIError)
    return cls(
        scrub(message, api_key),
        code=fields.get("code"),
        param=fields.get("param"),
        status_code=status,
        request_id=fields.get("request_id") or response.headers.get("x-request-id"),
        error_type=fields.get("type"),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
    )


def error_from_transport(exc: httpx.TransportError, url: str, *, api_key: str | None = None) -> APIConnectionError:
    """The exception for a request that got no answer (refused, reset, timed out)."""
    detail = scrub(str(exc) or type(exc).__name__, api_key)
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer from {url} in time ({detail})", code="timeout")
    return APIConnectionError(f"could not reach {url}: {detail}", code="connection_error")
