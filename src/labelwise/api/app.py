"""The HTTP server: `create_app(settings)` takes the services from the composition root (bootstrap.py), adds the
routes and the middleware."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from starlette.middleware.cors import CORSMiddleware

from labelwise import __version__
from labelwise.api.access import PUBLIC, declare_framework_routes, declared
from labelwise.api.auth import AuthMiddleware, KeyVerifier
from labelwise.api.errors import install_error_handlers
from labelwise.api.metrics import MetricsMiddleware
from labelwise.api.middleware import (
    BodyLimitMiddleware,
    EncoderAdmissionMiddleware,
    RequestContextMiddleware,
    RootPathMiddleware,
    cors_options,
)
from labelwise.api.ratelimit import AuthFailureGuard, RateLimitMiddleware
from labelwise.api.routes import (
    aliases,
    categories,
    classify,
    embeddings,
    generate,
    health,
    jobs,
    keys,
    labels,
    models,
    monitoring,
    reports,
    review,
    training,
    usage,
    vllm,
    web,
)
from labelwise.bootstrap import Container
from labelwise.config import Settings

logger = logging.getLogger(__name__)

DESCRIPTION = """Self-hosted text classification.

Authenticate with an API key as `x-api-key: KEY`, `Authorization: Bearer KEY` or `Authorization: Token KEY`.
Errors have one shape: `{"error": {"code", "message", "param", "request_id"}}`; every response carries
`X-Request-Id` (send your own, up to 64 characters of `A-Z a-z 0-9 . _ -`, or one is made).
"""


class LabelwiseAPI(FastAPI):
    """FastAPI holding the app's `Container`, with an OpenAPI document that describes our auth (from each route's
    declared access) and our 400 (not FastAPI's 422) for bad input."""

    container: Container

    def setup(self) -> None:
        super().setup()
        declare_framework_routes(self.routes)  # only FastAPI's own routes exist yet

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema:
            return self.openapi_schema
        schema = get_openapi(title=self.title, version=self.version, description=self.description, routes=self.routes)
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {
            "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
        for schemas_name in ("HTTPValidationError", "ValidationError"):
            components.get("schemas", {}).pop(schemas_name, None)
        public = {c.path_format for c in iter_route_contexts(self.routes) if declared(c.endpoint) == PUBLIC}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                if path not in public:
                    operation["security"] = [{"ApiKeyHeader": []}, {"Bearer": []}]
        self.openapi_schema = schema
        return schema


# In matching order: a path two routers could serve goes to the first.
ROUTERS = (
    classify, models, reports, aliases, health, web, keys, usage, embeddings, vllm, categories, labels, monitoring,
    jobs, training, review, generate,
)  # fmt: skip


def create_app(
    settings: Settings, *, migrate: bool = True, inference_threads: int = 0, key_cache_seconds: float = 5.0
) -> LabelwiseAPI:
    """A ready-to-serve app. Nothing connects until startup, where the schema is migrated (unless `migrate` is
    false: the multi-worker server migrates once in the parent) and the production models start loading.

    `inference_threads` > 0 runs engine calls in a thread pool instead of on the event loop (see `bench/serve.py`
    for why the default is inline). `key_cache_seconds` bounds how long a revoked key keeps working.
    """
    container = Container(settings, inference_threads=inference_threads)
    container.build_server()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await container.start(migrate=migrate)
        try:
            yield
        finally:
            await container.stop()

    # FastAPI looks for OpenTelemetry providers on every request unless told not to: about 7% of a one-text
    # classify's CPU time. Prometheus (/metrics) is always on; OpenTelemetry is opt-in.
    otel = settings.opentelemetry
    app = LabelwiseAPI(
        title="Labelwise",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
    )
    app.container = container
    install_error_handlers(app)
    for module in ROUTERS:
        app.include_router(module.router)
    _add_middleware(app, container, key_cache_seconds)
    return app


def _add_middleware(app: FastAPI, container: Container, key_cache_seconds: float) -> None:
    """Added innermost first: the context (request id, access log, last-resort 500) wraps auth, auth wraps the rate
    limit, which wraps the body size limit; all of them answer before the body is read. Innermost, encoder
    admission refuses zero-shot and embedding work the encoder's queue has no room for, before any route runs.
    Outermost, CORS (a browser's preflight carries no key) and the root path behind a proxy, when configured."""
    settings = container.settings
    app.add_middleware(EncoderAdmissionMiddleware, encoder=container.encoder_batcher)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        upload_routes=frozenset({("POST", "/v1/jobs"), ("POST", "/v1/models")}),
        upload_max_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RateLimitMiddleware, limiter=container.limiter)
    verifier = KeyVerifier(container.keys, ttl_seconds=key_cache_seconds)
    overrides = {"/metrics": PUBLIC} if settings.metrics_public else None
    app.add_middleware(
        AuthMiddleware, verifier=verifier, guard=AuthFailureGuard(container.limiter), overrides=overrides
    )
    app.add_middleware(MetricsMiddleware)  # inside the request context, outside auth: refusals are counted
    app.add_middleware(RequestContextMiddleware)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))
    if settings.root_path:
        app.add_middleware(RootPathMiddleware, root_path=settings.root_path)
