"""How each API surface shapes an error. `api/errors.py` picks the shape by path prefix (`SURFACES`) and serializes.

The same `LabelwiseError` (or middleware refusal) is rendered once, at the boundary, in the shape the surface's
clients parse: native `{"error": {code, message, param, request_id}}`; OpenAI and vLLM
`{"error": {message, type, param, code}}`; the categories API `{"error": message, "code": CODE}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Failure:
    """One error, surface-neutral: the native status and code, the message, the field at fault.

    `malformed` marks a body that is not JSON or has the wrong types (the categories API tells it apart).
    """

    status: int
    code: str
    message: str
    param: str | None
    request_id: str | None
    malformed: bool = False


Renderer = Callable[[Failure], tuple[int, dict[str, Any]]]


def native(failure: Failure) -> tuple[int, dict[str, Any]]:
    error = {"code": failure.code, "message": failure.message, "param": failure.param}
    return failure.status, {"error": {**error, "request_id": failure.request_id}}


def _openai_type(status: int) -> str:
    # The `type` values OpenAI's own API sends; clients branch on these.
    return {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai(failure: Failure) -> tuple[int, dict[str, Any]]:
    """OpenAI's shape; `code` is our stable code (a string, as OpenAI's are)."""
    error = {"message": failure.message, "type": _openai_type(failure.status), "param": failure.param}
    return failure.status, {"error": {**error, "code": failure.code}}


# The `type` vLLM's own server sends for these statuses; the others keep OpenAI's (vLLM leaves auth and rate limits
# to the proxy in front of it).
_VLLM_TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}


def vllm(failure: Failure) -> tuple[int, dict[str, Any]]:
    """vLLM's `ErrorResponse`: OpenAI's shape with vLLM's error types and the HTTP status as an integer `code`."""
    kind = _VLLM_TYPES.get(failure.status) or _openai_type(failure.status)
    error = {"message": failure.message, "type": kind, "param": failure.param}
    return failure.status, {"error": {**error, "code": failure.status}}


# The categories API's fixed set of codes; its error schema (api/schemas/compat.py) names the same type.
CategoryCode = Literal[
    "INVALID_PAYLOAD",
    "INVALID_REQUEST",
    "TEXT_CLASSIFICATION_ERROR",
    "INPUT_TOO_LONG",
    "INSUFFICIENT_BALANCE",
    "UNAUTHORIZED",
    "TOO_MANY_REQUESTS",
]


def categories(failure: Failure) -> tuple[int, dict[str, Any]]:
    """The categories API's flat shape and its fixed set of codes (`CategoryCode`).

    Out of credits is 400 there (402 on the native API); a key without the scope is 401 like a bad key. A failure
    on our side keeps its 5xx status (a client may retry it; it is not the caller's fault) under the code the
    service documents for failed inference, TEXT_CLASSIFICATION_ERROR.
    """
    status, code = failure.status, failure.code
    if failure.malformed:
        status, code = 400, "INVALID_PAYLOAD"
    elif code in ("INPUT_TOO_LONG", "payload_too_large") or status == 413:
        status, code = 400, "INPUT_TOO_LONG"
    elif code == "INSUFFICIENT_BALANCE":
        status = 400
    elif status in (401, 403):
        status, code = 401, "UNAUTHORIZED"
    elif status == 429:
        code = "TOO_MANY_REQUESTS"
    elif status >= 500:
        code = "TEXT_CLASSIFICATION_ERROR"
    else:  # any other client error: an unknown model, a bad value, a route that does not exist
        code = "INVALID_REQUEST"
        status = 404 if failure.status in (404, 405) and failure.param is None else 400
    return status, {"error": failure.message, "code": code}
