"""Pure ASGI middleware: request context and access log, the body size limit, encoder admission, and the root
path behind a proxy (with `cors_options` for Starlette's CORS middleware).

Pure ASGI rather than `BaseHTTPMiddleware` because these run on every request: they add no task per request, and
they can answer before the application (or anyone) reads the body.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelwise.api.errors import BodyTooLarge, error_response, labelwise_error_response, send_internal_error
from labelwise.errors import Overloaded, PayloadTooLarge

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("labelwise.api.access")

_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# Fields a route may leave in `request.state` for the access log (never text or key material).
_STATE_LOG_FIELDS = ("key_prefix", "model", "version", "texts", "queue_ms", "inference_ms")


def new_request_id() -> str:
    return "req_" + os.urandom(12).hex()


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lowercase), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


def state_of(scope: Scope) -> dict[str, Any]:
    """The per-request state dict that `request.state` reads and writes."""
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


class RequestContextMiddleware:
    """Gives each request an id (a valid `X-Request-Id` or a new one), echoes it, and logs one line per request.

    It is also the last line of defence: an exception nobody handled is logged with its traceback here and answered
    500 with a generic message, so the access log still records the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        sent = header(scope, b"x-request-id")
        request_id = sent.decode() if sent is not None and _REQUEST_ID_RE.fullmatch(sent) else new_request_id()
        state = state_of(scope)
        state["request_id"] = request_id
        state["started"] = started
        id_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:
                logger.error("error after the response started", extra={"request_id": request_id}, exc_info=exc)
            else:
                await send_internal_error(send_with_id, exc, request_id, scope["path"])
        finally:
            _log_access(scope, state, status, started)


def _log_access(scope: Scope, state: dict[str, Any], status: int, started: float) -> None:
    route = scope.get("route")
    path = getattr(route, "path", None) or "(unmatched)"
    fields: dict[str, Any] = {
        "request_id": state.get("request_id"),
        "method": scope.get("method"),
        "route": path,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }
    for name in _STATE_LOG_FIELDS:
        if name in state:
            fields[name] = state[name]
    access_logger.info("request", extra=fields)


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes`: by `Content-Length` before reading anything, and by counting chunks.

    `upload_routes` (method, path) pairs, the file uploads of jobs and training, get `upload_max_bytes` instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        upload_routes: frozenset[tuple[str, str]] = frozenset(),
        upload_max_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_routes = upload_routes
        self.upload_max_bytes = upload_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (scope.get("method"), scope["path"].rstrip("/")) in self.upload_routes:
            limit = max(self.max_bytes, self.upload_max_bytes)
            await BodyLimitMiddleware(self.app, max_bytes=limit)(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            request_id = state_of(scope).get("request_id")
            if not declared.isdigit():
                response = error_response(
                    400,
                    "invalid_request",
                    "Content-Length: not a number",
                    param="body",
                    request_id=request_id,
                    path=scope["path"],
                    malformed=True,
                )
                await response(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                exc = PayloadTooLarge(f"body: {int(declared):,} bytes, the limit is {self.max_bytes:,}", param="body")
                await labelwise_error_response(exc, request_id, scope["path"])(scope, receive, send)
                return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        # Content-Length may be absent (chunked) or untrue: count what actually arrives.
        received = 0
        limit = self.max_bytes

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return counted


class EncoderRoom(Protocol):
    """What the admission check needs from the encoder batcher."""

    @property
    def queued_texts(self) -> int: ...

    def check_room(self, count: int) -> None: ...


def _texts_of(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    return len(value) if isinstance(value, list) else 1


def _zero_shot_texts(body: dict[str, Any]) -> int | None:
    """Texts of a native classify or batch request that names labels (zero-shot), else None."""
    if body.get("labels") is None and body.get("categories") is None:
        return None
    return _texts_of(body, "texts" if "texts" in body else "text")


# POST routes whose work may go to the encoder -> the number of texts it would queue there (None: it will not).
_ENCODER_ROUTES: dict[str, Callable[[dict[str, Any]], int | None]] = {
    "/v1/classify": _zero_shot_texts,
    "/v1/batch": _zero_shot_texts,
    "/v1/embeddings": lambda body: _texts_of(body, "input"),
    "/classification": lambda body: 1,
    "/text/classification": lambda body: 1 if body.get("model") is None else None,
}


class EncoderAdmissionMiddleware:
    """Refuses encoder work that would not fit in the encoder's queue before any route code runs.

    While the encoder is busy its queue check is the answer most requests get under overload, so it is made as
    cheap as possible: the body is read and parsed once with orjson (no validation, no dependencies, no model or
    billing lookups) and a request that would not fit gets 503 with Retry-After at once. The route's own check
    (inside the batcher) stays authoritative. With an empty queue nothing is read here: the common case costs one
    comparison. The body is handed on unchanged.
    """

    def __init__(self, app: ASGIApp, *, encoder: EncoderRoom) -> None:
        self.app = app
        self.encoder = encoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        count_of = _ENCODER_ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if count_of is None or scope.get("method") != "POST" or self.encoder.queued_texts == 0:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client left; let the app see it
                    await self.app(scope, _replay(b"".join(chunks), receive, message), send)
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
        except BodyTooLarge as exc:  # raised by the body limit's counting `receive`, outside the app's handlers
            request_id = state_of(scope).get("request_id")
            refusal = error_response(
                413, "payload_too_large", str(exc.detail), param="body", request_id=request_id, path=scope["path"]
            )
            await refusal(scope, receive, send)
            return
        body = b"".join(chunks)
        try:
            parsed = orjson.loads(body)
            count = count_of(parsed) if isinstance(parsed, dict) else None
            if count is not None:
                self.encoder.check_room(count)
        except orjson.JSONDecodeError:
            pass  # the route answers it, naming the problem
        except Overloaded as exc:
            await labelwise_error_response(exc, state_of(scope).get("request_id"), scope["path"])(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive, after: Message | None = None) -> Receive:
    """A `receive` that gives `body` as one message (then `after`, if given), then defers to `receive`."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if after is not None:
        pending.append(after)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class RootPathMiddleware:
    """Serves the app under `root_path` (a prefix such as `/labelwise`) behind a reverse proxy.

    A request may arrive with the prefix (a proxy that forwards the path as it is, or a direct call) or without
    it (a proxy that strips it): either way the app sees its own paths (`/v1/classify`) and `root_path` in the
    scope, from which the docs and the web UI build their links. Done here rather than with uvicorn's
    `--root-path`, which prepends the prefix to every path (so a proxy that keeps the prefix would see it twice).
    """

    def __init__(self, app: ASGIApp, *, root_path: str) -> None:
        self.app = app
        self.root_path = root_path
        self.raw_root = root_path.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        path: str = scope["path"]
        if path == self.root_path or path.startswith(self.root_path + "/"):
            scope["path"] = path[len(self.root_path) :] or "/"
            raw: bytes | None = scope.get("raw_path")
            if raw is not None and raw.startswith(self.raw_root):
                scope["raw_path"] = raw[len(self.raw_root) :] or b"/"
        scope["root_path"] = self.root_path
        await self.app(scope, receive, send)


# What a browser page on an allowed origin may send and read (keys travel in headers, never in cookies).
CORS_REQUEST_HEADERS = ("authorization", "x-api-key", "content-type", "idempotency-key", "x-request-id")
CORS_RESPONSE_HEADERS = ("x-request-id", "retry-after", "x-queue-time", "x-inference-time")


def cors_options(origins: Sequence[str]) -> dict[str, Any]:
    """Options of Starlette's `CORSMiddleware` for the API: these origins, any method, the headers above."""
    return {
        "allow_origins": list(origins),
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": list(CORS_REQUEST_HEADERS),
        "expose_headers": list(CORS_RESPONSE_HEADERS),
        "allow_credentials": False,
        "max_age": 600,
    }
