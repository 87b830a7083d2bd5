"""Request metrics as pure ASGI middleware: one count and one duration per answered request.

It sits inside the request context middleware (so a request id exists) and outside auth and the rate limit, so
refusals (401, 402, 429) are counted too. The route's model and version come from `request.state`, where the
classify routes leave them for the access log.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelwise.api.middleware import state_of
from labelwise.monitoring.metrics import observe_request


class MetricsMiddleware:
    """Counts each HTTP request by route template (never the raw path: its cardinality is unbounded)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state = state_of(scope)
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            observe_request(
                route,
                status,
                str(state.get("model", "")),
                str(state.get("version", "")),
                (time.perf_counter() - started) * 1000.0,
            )
