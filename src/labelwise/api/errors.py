"""The one place where errors become HTTP responses (native shape: `{"error": {code, message, param, request_id}}`).

`LabelwiseError` subclasses carry their own code and status. Request validation errors are answered 400
`invalid_request` naming the field, like every other input problem (the contract has one status for bad input, not
a 400/422 split). Anything else is a bug: logged with its traceback and answered 500 with a generic message and the
request id, never `str(exc)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Send

from labelwise.api import error_shapes
from labelwise.api.error_shapes import Failure, Renderer
from labelwise.errors import LabelwiseError, RateLimited, StorageError, Unauthorized

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
UNAUTHORIZED_MESSAGE = (
    "missing or invalid API key: send it as 'x-api-key: KEY', 'Authorization: Bearer KEY' or 'Authorization: Token KEY'"
)
INTERNAL_MESSAGE = "internal error; the request id identifies it in the server logs"

# Status codes Starlette raises itself (routing, bodies) and the code each gets in our error shape.
_HTTP_CODES: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request", "body: not valid JSON in UTF-8"),
    404: ("not_found", "not found: no such route"),
    405: ("method_not_allowed", "method not allowed on this route"),
    413: ("payload_too_large", "body: the request body is too large"),
}


# Path prefix -> the error shape of that API surface (a prefix matches the path itself or the path below it);
# every other path answers in the native shape. Middleware refusals (auth, rate limit, body size) use it too.
SURFACES: Sequence[tuple[str, Renderer]] = (
    ("/v1/embeddings", error_shapes.openai),
    ("/v1/chat/completions", error_shapes.openai),
    ("/classify", error_shapes.vllm),
    ("/invocations", error_shapes.vllm),
    ("/pooling", error_shapes.vllm),
    ("/text/classification", error_shapes.categories),
)


def renderer_for(path: str | None) -> Renderer:
    if path is not None:
        for prefix, render in SURFACES:
            if path == prefix or path.startswith(prefix + "/"):
                return render
    return error_shapes.native


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        # A lone surrogate copied from the input into a message: escape it rather than fail while failing.
        return orjson.dumps(_escape_all(body))


def _escape_all(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _escape_all(v) for k, v in value.items()}
    return _escape(value) if isinstance(value, str) else value


class BodyTooLarge(HTTPException):
    """Raised from inside `receive` when a streamed body passes the limit (Content-Length lied or was absent)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: more bytes than the limit of {limit:,}")


def error_body(code: str, message: str, param: str | None, request_id: str | None) -> bytes:
    """The serialized native error object."""
    error = {"code": code, "message": message, "param": param, "request_id": request_id}
    try:
        return orjson.dumps({"error": error})
    except orjson.JSONEncodeError:
        # A lone surrogate copied from the input into a message: escape it rather than fail while failing.
        cleaned = {k: _escape(v) if isinstance(v, str) else v for k, v in error.items()}
        return orjson.dumps({"error": cleaned})


def _escape(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    request_id: str | None = None,
    headers: Mapping[str, str] | None = None,
    path: str | None = None,
    malformed: bool = False,
) -> Response:
    """The error in the shape of the surface that `path` belongs to (native when None or not listed)."""
    render = renderer_for(path)
    status, body = render(Failure(status, code, message, param, request_id, malformed))
    return Response(
        _dumps(body),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def labelwise_error_response(exc: LabelwiseError, request_id: str | None, path: str | None = None) -> Response:
    """The response for one of our own errors, with the headers its status calls for."""
    headers: dict[str, str] = {}
    if exc.http_status == 503:  # overloaded, or the database away: the same request works later
        headers["Retry-After"] = str(int(exc.details.get("retry_after", RETRY_AFTER_SECONDS)))
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(int(exc.details.get("retry_after", RETRY_AFTER_SECONDS)))
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return error_response(
        exc.http_status, exc.code, exc.message, param=exc.param, request_id=request_id, headers=headers, path=path
    )


def validation_param(loc: Sequence[Any]) -> str:
    """`("body", "texts", 3)` -> `texts[3]`; a problem with the body as a whole -> `body`."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)
    if not parts or not isinstance(parts[0], str):
        return "body"
    name = parts[0]
    for part in parts[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def validation_message(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The field and a one-line message for the first problem (the input itself is never echoed)."""
    first = errors[0]
    param = validation_param(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        detail = str(first.get("ctx", {}).get("error", "malformed"))
        return "body", f"body: invalid JSON ({detail})"
    msg = str(first.get("msg", "invalid value"))
    msg = msg[:1].lower() + msg[1:]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return param, f"{param}: {msg}{more}"


def request_id_of(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


async def _labelwise_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LabelwiseError)
    request_id = request_id_of(request)
    if exc.http_status == 500:
        # Our own error class, but still a server-side failure (a model that will not load, an unfitted engine).
        logger.error("request failed: %s", exc.message, extra={"request_id": request_id}, exc_info=exc)
    return labelwise_error_response(exc, request_id, request.scope["path"])


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    param, message = validation_message(exc.errors())
    return error_response(
        400,
        "invalid_request",
        message,
        param=param,
        request_id=request_id_of(request),
        path=request.scope["path"],
        malformed=True,
    )


async def _http_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, default = _HTTP_CODES.get(exc.status_code, ("http_error", "request failed"))
    message = exc.detail if isinstance(exc, BodyTooLarge) else default
    param = "body" if exc.status_code in (400, 413) else None
    return error_response(
        exc.status_code,
        code,
        message,
        param=param,
        request_id=request_id_of(request),
        headers=exc.headers,
        path=request.scope["path"],
        malformed=exc.status_code == 400,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers; unexpected exceptions are handled by `send_internal_error` in the middleware."""
    app.add_exception_handler(LabelwiseError, _labelwise_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(HTTPException, _http_handler)


async def send_internal_error(send: Send, exc: BaseException, request_id: str, path: str | None = None) -> None:
    """Log an unexpected exception with its traceback and answer a generic 500 naming only the request id.

    A storage error that reached the middleware (the database went away under a key lookup) is no bug: it is
    answered as itself (503 with `Retry-After`), unlogged; the database logs its outage once.
    """
    if isinstance(exc, StorageError):
        response = labelwise_error_response(exc, request_id, path)
        await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})
        return
    logger.error("unhandled error", extra={"request_id": request_id}, exc_info=exc)
    status, shaped = renderer_for(path)(Failure(500, "internal_error", INTERNAL_MESSAGE, None, request_id))
    body = _dumps(shaped)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
