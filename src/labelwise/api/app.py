"""The composition root of the HTTP server: `create_app(settings)` builds and wires every concrete class."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware

from labelwise import __version__
from labelwise.api.auth import PUBLIC_PATHS, AuthMiddleware, KeyVerifier
from labelwise.api.deps import AppServices
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
from labelwise.api.routes import aliases, classify, health, models, reports, web
from labelwise.api.routes import categories as categories_routes
from labelwise.api.routes import embeddings as embedding_routes
from labelwise.api.routes import jobs as job_routes
from labelwise.api.routes import keys as key_routes
from labelwise.api.routes import labels as labels_routes
from labelwise.api.routes import monitoring as monitoring_routes
from labelwise.api.routes import training as training_routes
from labelwise.api.routes import usage as usage_routes
from labelwise.api.routes import vllm as vllm_routes
from labelwise.config import Settings
from labelwise.domain import ModelVersion
from labelwise.encoder import EncoderBatcher, configure_encoder, get_encoder
from labelwise.inference.cache import PredictionCache
from labelwise.inference.manager import BatchingConfig, ModelManager
from labelwise.monitoring.drift import DriftService
from labelwise.monitoring.feedback import FeedbackService
from labelwise.monitoring.predictions import PredictionLog
from labelwise.monitoring.service import Monitoring
from labelwise.registry.store import ModelStore
from labelwise.services.classify import ClassifyLimits, ClassifyService
from labelwise.services.compat import CompatService
from labelwise.services.credits import Billing, CreditService, PriceList
from labelwise.services.embeddings import EmbeddingService, LazyEncoder
from labelwise.services.idempotency import IdempotencyService
from labelwise.services.job_worker import JobWorker
from labelwise.services.jobs import JobConfig, JobService
from labelwise.services.keys import KeyService
from labelwise.services.limits import LimiterBackend, RequestLimiter
from labelwise.services.reports import ReportService
from labelwise.services.usage import UsageMeter
from labelwise.services.zeroshot import ZeroShotService
from labelwise.storage.db import Database
from labelwise.storage.jobs_repository import IdempotencyRepository, JobRepository
from labelwise.storage.monitoring import FeedbackRepository, PredictionLogRepository
from labelwise.storage.repositories import KeyRepository, ModelRepository, UsageRepository

logger = logging.getLogger(__name__)

DESCRIPTION = """Self-hosted text classification.

Authenticate with an API key as `x-api-key: KEY`, `Authorization: Bearer KEY` or `Authorization: Token KEY`.
Errors have one shape: `{"error": {"code", "message", "param", "request_id"}}`; every response carries
`X-Request-Id` (send your own, up to 64 characters of `A-Z a-z 0-9 . _ -`, or one is made).
"""


class LabelwiseAPI(FastAPI):
    """FastAPI with an OpenAPI document that describes our auth and our 400 (not FastAPI's 422) for bad input."""

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
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                if path not in PUBLIC_PATHS:
                    operation["security"] = [{"ApiKeyHeader": []}, {"Bearer": []}]
        self.openapi_schema = schema
        return schema


def _limits_and_metering(
    settings: Settings, db: Database, key_repo: KeyRepository
) -> tuple[RequestLimiter, UsageMeter, Billing]:
    """The rate limiter (shared through Redis when configured), the usage meter, and billing with the price list."""
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url is not None else None
    backend = LimiterBackend(
        redis_url, key_prefix=settings.redis_key_prefix, probe_seconds=settings.redis_probe_seconds
    )
    limiter = RequestLimiter(
        backend, default_limit=settings.default_rate_limit, auth_failures=settings.auth_failure_limit
    )
    usage = UsageMeter(UsageRepository(db), flush_seconds=settings.usage_flush_seconds)
    prices = PriceList(settings.credit_prices, settings.credit_price_default)
    return limiter, usage, Billing(CreditService(key_repo, prices), usage)


def _jobs(
    settings: Settings,
    db: Database,
    key_repo: KeyRepository,
    model_repo: ModelRepository,
    idempotency: IdempotencyService,
) -> job_routes.JobsApi:
    """The jobs service, with idempotency keys, and the embedded worker unless `embedded_worker` is off."""
    config = JobConfig.of(settings)
    prices = PriceList(settings.credit_prices, settings.credit_price_default)
    service = JobService(JobRepository(db), key_repo, ModelStore(settings.models_dir, model_repo), prices, config)
    worker = JobWorker(service, poll_seconds=settings.worker_poll_seconds) if settings.embedded_worker else None
    return job_routes.JobsApi(service, idempotency, settings.data_dir / "uploads", worker)


def _monitoring(settings: Settings, db: Database, manager: ModelManager) -> Monitoring:
    """The prediction log, feedback, drift and shadow scoring."""
    log = PredictionLog(
        PredictionLogRepository(db),
        sample=settings.prediction_log_sample,
        max_per_second=settings.prediction_log_max_per_second,
        raw_text=settings.log_raw_text,
        raw_text_keys=settings.log_raw_text_keys,
        retention=timedelta(days=settings.raw_text_retention_days),
        flush_seconds=settings.prediction_log_flush_seconds,
    )
    reports = ReportService(manager.store)

    def read_report(record: ModelVersion) -> dict[str, Any]:
        return reports.report(record.name, record.version)

    drift = DriftService(manager.models, log, read_report)
    return Monitoring(
        manager,
        log,
        FeedbackService(FeedbackRepository(db), log),
        drift,
        shadow_enabled=settings.shadow,
        shadow_sample=settings.shadow_sample,
    )


def _encoder_services(
    settings: Settings, classify_service: ClassifyService, billing: Billing
) -> tuple[EncoderBatcher, EmbeddingService, ZeroShotService]:
    """The encoder batcher (the encoder itself loads on first use) and the embedding and zero-shot services."""
    configure_encoder(settings.encoder_dir or settings.data_dir / "encoder")
    lazy = LazyEncoder()
    batcher = EncoderBatcher(lazy, max_queue_texts=settings.encoder_queue_texts, nice=settings.encoder_nice)
    embeddings = EmbeddingService(
        batcher, lazy, max_inputs=settings.max_batch_texts, max_text_chars=settings.max_text_chars, billing=billing
    )
    return batcher, embeddings, ZeroShotService(batcher, classify_service, cache_size=settings.zeroshot_cache_size)


def create_app(
    settings: Settings, *, migrate: bool = True, inference_threads: int = 0, key_cache_seconds: float = 5.0
) -> FastAPI:
    """A ready-to-serve app. Nothing connects until startup, where the schema is migrated (unless `migrate` is
    false: the multi-worker server migrates once in the parent) and the production models start loading.

    `inference_threads` > 0 runs engine calls in a thread pool instead of on the event loop (see `bench/serve.py`
    for why the default is inline). `key_cache_seconds` bounds how long a revoked key keeps working.
    """
    db = Database(settings.resolved_database_url())
    model_repo = ModelRepository(db)
    key_repo = KeyRepository(db)
    keys = KeyService(key_repo, default_credits=settings.default_credits)
    limiter, usage, billing = _limits_and_metering(settings, db, key_repo)
    executor = ThreadPoolExecutor(inference_threads, "labelwise-infer") if inference_threads > 0 else None
    manager = ModelManager(
        ModelStore(settings.models_dir, model_repo),
        model_repo,
        poll_seconds=settings.model_poll_seconds,
        cache=PredictionCache(settings.cache_size),
        batching=BatchingConfig(
            max_size=settings.batch_max_size,
            max_wait_ms=settings.batch_max_wait_ms,
            queue_max=settings.queue_max,
            executor=executor,
        ),
    )
    limits = ClassifyLimits(max_text_chars=settings.max_text_chars, max_batch_texts=settings.max_batch_texts)
    services = AppServices(
        settings=settings,
        db=db,
        manager=manager,
        classify=ClassifyService(
            manager, limits, default_model=settings.default_model, billing=billing, canary_share=settings.canary_share
        ),
        keys=keys,
        usage=usage,
        limiter=limiter,
        idempotency=IdempotencyService(IdempotencyRepository(db)),
    )

    jobs = _jobs(settings, db, key_repo, model_repo, services.idempotency)
    monitoring = _monitoring(settings, db, manager)
    encoder_batcher, embeddings, zeroshot = _encoder_services(settings, services.classify, billing)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await asyncio.to_thread(db.migrate)
        manager.start()
        if jobs.worker is not None:
            jobs.worker.start()
        usage.start()
        monitoring.start()
        await encoder_batcher.start()
        if settings.preload_encoder:  # else loaded by the first request that needs it, so /ready does not wait
            await asyncio.to_thread(get_encoder)
        try:
            yield
        finally:
            await encoder_batcher.stop()
            await manager.stop()
            await usage.stop()  # writes the usage still buffered
            await monitoring.stop()  # and the prediction log
            await limiter.close()
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
            if jobs.worker is not None:
                await asyncio.to_thread(jobs.worker.stop)
            db.dispose()

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
    app.state.services = services
    install_error_handlers(app)
    for module in (classify, models, reports, aliases, health, web):
        app.include_router(module.router)
    app.include_router(key_routes.router)
    app.include_router(usage_routes.router)
    app.state.monitoring = monitoring
    app.state.embeddings = embeddings
    app.state.zeroshot = zeroshot
    app.state.compat = CompatService(services.classify, zeroshot)
    for module in (embedding_routes, vllm_routes, categories_routes, labels_routes):
        app.include_router(module.router)
    app.include_router(monitoring_routes.router)
    app.state.jobs = jobs
    app.include_router(job_routes.router)
    app.include_router(training_routes.router)
    # Added innermost first: the context (request id, access log, last-resort 500) wraps auth, auth wraps the rate
    # limit, which wraps the body size limit; all of them answer before the body is read. Innermost, encoder
    # admission refuses zero-shot and embedding work the encoder's queue has no room for, before any route runs.
    app.add_middleware(EncoderAdmissionMiddleware, encoder=encoder_batcher)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        upload_routes=frozenset({("POST", "/v1/jobs"), ("POST", "/v1/models")}),
        upload_max_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    verifier = KeyVerifier(keys, ttl_seconds=key_cache_seconds)
    public = PUBLIC_PATHS | {"/metrics"} if settings.metrics_public else PUBLIC_PATHS
    app.add_middleware(AuthMiddleware, verifier=verifier, guard=AuthFailureGuard(limiter), public_paths=public)
    app.add_middleware(MetricsMiddleware)  # inside the request context, outside auth: refusals are counted
    app.add_middleware(RequestContextMiddleware)
    if settings.cors_origins:  # outside auth: a browser's preflight carries no key
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))
    if settings.root_path:
        app.add_middleware(RootPathMiddleware, root_path=settings.root_path)
    return app
