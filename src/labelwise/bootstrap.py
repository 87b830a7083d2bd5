"""The composition root: the one module that names concrete classes and wires them together from `Settings`.

`create_app` (the HTTP server), every CLI command and `labelwise worker` build one `Container` and take what they
need from it. Each part is built on first use, so a CLI command that needs no database opens none, and nothing
connects until used: the server's `start()` migrates the schema and starts the background tasks, `stop()` ends
them in the reverse order.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from labelwise.config import Settings
from labelwise.domain import ModelVersion
from labelwise.encoder import EncoderBatcher, LazyEncoder
from labelwise.engines.zeroshot import ZeroShotEngine
from labelwise.errors import InvalidRequest
from labelwise.inference.cache import PredictionCache
from labelwise.inference.manager import BatchingConfig, ModelManager
from labelwise.llm import LLMUpstream, UpstreamConfig, configure_upstream
from labelwise.monitoring.drift import DriftService
from labelwise.monitoring.feedback import FeedbackService
from labelwise.monitoring.predictions import PredictionLog
from labelwise.monitoring.service import Monitoring
from labelwise.registry.store import ModelStore
from labelwise.services.aliases import AliasService
from labelwise.services.classify import ClassifyLimits, ClassifyService
from labelwise.services.compat import CompatService
from labelwise.services.credits import Billing, CreditService, PriceList, TokenPrices
from labelwise.services.embeddings import EmbeddingService
from labelwise.services.generation import GenerationService
from labelwise.services.idempotency import IdempotencyService
from labelwise.services.job_worker import JobWorker
from labelwise.services.jobs import JobConfig, JobService
from labelwise.services.keys import KeyService
from labelwise.services.labelstudio import LabelStudioClient, LabelStudioExchange
from labelwise.services.limits import LimiterBackend, RequestLimiter
from labelwise.services.llm_classify import LLMClassifier
from labelwise.services.reports import ReportService
from labelwise.services.training import ModelService
from labelwise.services.usage import UsageMeter
from labelwise.services.zeroshot import ZeroShotService
from labelwise.storage.db import Database
from labelwise.storage.jobs_repository import IdempotencyRepository, JobRepository
from labelwise.storage.monitoring import FeedbackRepository, PredictionLogRepository
from labelwise.storage.repositories import KeyRepository, ModelRepository, UsageRepository


class Container:
    """Every service of one process, built from `settings` on first use and shared from then on.

    `open_migrates`: the database is migrated when first opened (the CLI); the server migrates in `start()`
    instead, or not at all when the multi-worker parent did it. `inference_threads` > 0 runs engine calls in a
    thread pool instead of on the event loop (see `bench/serve.py` for why the default is inline).
    """

    def __init__(self, settings: Settings, *, open_migrates: bool = False, inference_threads: int = 0) -> None:
        self.settings = settings
        self.open_migrates = open_migrates
        self.inference_threads = inference_threads

    # Storage ---------------------------------------------------------------------------------------------------

    @cached_property
    def db(self) -> Database:
        db = Database(self.settings.resolved_database_url())
        if self.open_migrates:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            db.migrate()
        return db

    @cached_property
    def key_repo(self) -> KeyRepository:
        return KeyRepository(self.db)

    @cached_property
    def model_repo(self) -> ModelRepository:
        return ModelRepository(self.db)

    @cached_property
    def store(self) -> ModelStore:
        configure_upstream(self.llm_config)  # stored `llm` models outside the server (eval, training) ask it
        # Engines that need the sentence encoder are given this one when loaded or trained (it loads on first use).
        return ModelStore(self.settings.models_dir, self.model_repo, encoder=self.encoder)

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded job and training files wait until they are checked and copied."""
        return self.settings.data_dir / "uploads"

    # Keys, limits, credits, usage ------------------------------------------------------------------------------

    @cached_property
    def keys(self) -> KeyService:
        return KeyService(self.key_repo, default_credits=self.settings.default_credits)

    @cached_property
    def limiter(self) -> RequestLimiter:
        """The rate limiter, shared through Redis when `redis_url` is set."""
        settings = self.settings
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url is not None else None
        backend = LimiterBackend(
            redis_url, key_prefix=settings.redis_key_prefix, probe_seconds=settings.redis_probe_seconds
        )
        return RequestLimiter(
            backend,
            default_limit=settings.default_rate_limit,
            auth_failures=settings.auth_failure_limit,
            token_limit=settings.llm_token_rate_limit,
        )

    @cached_property
    def usage(self) -> UsageMeter:
        return UsageMeter(UsageRepository(self.db), flush_seconds=self.settings.usage_flush_seconds)

    @cached_property
    def prices(self) -> PriceList:
        return PriceList(self.settings.credit_prices, self.settings.credit_price_default)

    @cached_property
    def billing(self) -> Billing:
        return Billing(CreditService(self.key_repo, self.prices), self.usage)

    @cached_property
    def idempotency(self) -> IdempotencyService:
        return IdempotencyService(IdempotencyRepository(self.db))

    # Models and classification ---------------------------------------------------------------------------------

    @cached_property
    def models(self) -> ModelService:
        """Training, evaluation and offline prediction (the CLI)."""
        return ModelService(self.store)

    @cached_property
    def executor(self) -> ThreadPoolExecutor | None:
        if self.inference_threads <= 0:
            return None
        return ThreadPoolExecutor(self.inference_threads, "labelwise-infer")

    @cached_property
    def manager(self) -> ModelManager:
        settings = self.settings
        return ModelManager(
            self.store,
            self.model_repo,
            poll_seconds=settings.model_poll_seconds,
            cache=PredictionCache(settings.cache_size),
            batching=BatchingConfig(
                max_size=settings.batch_max_size,
                max_wait_ms=settings.batch_max_wait_ms,
                queue_max=settings.queue_max,
                executor=self.executor,
            ),
        )

    @cached_property
    def classify(self) -> ClassifyService:
        settings = self.settings
        limits = ClassifyLimits(max_text_chars=settings.max_text_chars, max_batch_texts=settings.max_batch_texts)
        return ClassifyService(
            self.manager,
            limits,
            default_model=settings.default_model,
            billing=self.billing,
            canary_share=settings.canary_share,
        )

    @cached_property
    def aliases(self) -> AliasService:
        return AliasService(self.store, self.key_repo)

    @cached_property
    def reports(self) -> ReportService:
        return ReportService(self.store)

    # The encoder: embeddings and zero-shot ---------------------------------------------------------------------

    @cached_property
    def encoder(self) -> LazyEncoder:
        """The sentence encoder, loaded by the first call that needs it (or at start with `preload_encoder`); it
        derives its model once into `encoder_dir`, else `data_dir/encoder`."""
        return LazyEncoder(self.settings.encoder_dir or self.settings.data_dir / "encoder")

    @cached_property
    def encoder_batcher(self) -> EncoderBatcher:
        settings = self.settings
        return EncoderBatcher(self.encoder, max_queue_texts=settings.encoder_queue_texts, nice=settings.encoder_nice)

    @cached_property
    def embeddings(self) -> EmbeddingService:
        settings = self.settings
        return EmbeddingService(
            self.encoder_batcher,
            self.encoder,
            max_inputs=settings.max_batch_texts,
            max_text_chars=settings.max_text_chars,
            billing=self.billing,
        )

    @cached_property
    def zeroshot(self) -> ZeroShotService:
        return ZeroShotService(
            self.encoder_batcher,
            self.classify,
            build=partial(ZeroShotEngine.from_labels, encoder=self.encoder),
            cache_size=self.settings.zeroshot_cache_size,
        )

    @cached_property
    def compat(self) -> CompatService:
        return CompatService(self.classify, self.zeroshot)

    # Language models -------------------------------------------------------------------------------------------

    @cached_property
    def llm_config(self) -> UpstreamConfig | None:
        """Where the OpenAI-compatible upstream of `llm_url` is; None when none is configured."""
        settings = self.settings
        if settings.llm_url is None:
            return None
        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key is not None else None
        return UpstreamConfig(
            url=settings.llm_url,
            api_key=api_key,
            model=settings.llm_model,
            connect_timeout=settings.llm_connect_timeout_seconds,
            read_timeout=settings.llm_timeout_seconds,
            max_connections=settings.llm_max_connections,
        )

    @cached_property
    def llm_upstream(self) -> LLMUpstream | None:
        """The pooled client of that upstream, shared by generation and LLM classification."""
        return None if self.llm_config is None else LLMUpstream(self.llm_config)

    @cached_property
    def generation(self) -> GenerationService:
        settings = self.settings
        return GenerationService(
            self.llm_upstream,
            billing=self.billing,
            limiter=self.limiter,
            prices=TokenPrices(settings.llm_credits_per_request, settings.llm_credits_per_1000_tokens),
            max_prompt_chars=settings.max_text_chars,
        )

    @cached_property
    def llm_classifier(self) -> LLMClassifier:
        """Classification by the language model: `"method": "llm"`, and stored `llm` model versions."""
        classifier = LLMClassifier(self.llm_upstream, self.classify)
        self.classify.delegate("llm", classifier.stored)
        return classifier

    # Jobs ------------------------------------------------------------------------------------------------------

    @cached_property
    def jobs(self) -> JobService:
        config = JobConfig.of(self.settings)
        return JobService(JobRepository(self.db), self.key_repo, self.store, self.prices, config, encoder=self.encoder)

    @cached_property
    def job_worker(self) -> JobWorker | None:
        """The server's embedded worker; None when `embedded_worker` is off."""
        if not self.settings.embedded_worker:
            return None
        return JobWorker(self.jobs, poll_seconds=self.settings.worker_poll_seconds)

    # Monitoring ------------------------------------------------------------------------------------------------

    @cached_property
    def prediction_log(self) -> PredictionLog:
        settings = self.settings
        return PredictionLog(
            PredictionLogRepository(self.db),
            sample=settings.prediction_log_sample,
            max_per_second=settings.prediction_log_max_per_second,
            raw_text=settings.log_raw_text,
            raw_text_keys=settings.log_raw_text_keys,
            retention=timedelta(days=settings.raw_text_retention_days),
            flush_seconds=settings.prediction_log_flush_seconds,
        )

    @cached_property
    def feedback(self) -> FeedbackService:
        return FeedbackService(FeedbackRepository(self.db), self.prediction_log)

    @cached_property
    def label_studio(self) -> LabelStudioExchange:
        """The review queue's round trip through Label Studio (`label_studio_client` says where)."""
        return LabelStudioExchange(self.feedback, self.store, self.label_studio_client)

    def label_studio_client(self, url: str | None = None) -> LabelStudioClient:
        """A client of `url` (default: the configured Label Studio) with the configured token; close it after use."""
        url = url or self.settings.label_studio_url
        token = self.settings.label_studio_token
        if not url:
            raise InvalidRequest(
                "label_studio: no Label Studio is configured; set LABELWISE_LABEL_STUDIO_URL", param="label_studio"
            )
        if token is None:
            raise InvalidRequest(
                "label_studio: no token is configured; set LABELWISE_LABEL_STUDIO_TOKEN", param="label_studio"
            )
        return LabelStudioClient(url, token.get_secret_value())

    def _read_report(self, record: ModelVersion) -> dict[str, Any]:
        return self.reports.report(record.name, record.version)

    @cached_property
    def drift(self) -> DriftService:
        """Drift of the versions the server has loaded."""
        return DriftService(self.manager.models, self.prediction_log, self._read_report)

    @cached_property
    def stored_drift(self) -> DriftService:
        """Drift of the versions in the model store, for a process that loads none (the CLI)."""
        return DriftService(self.store.all, self.prediction_log, self._read_report)

    @cached_property
    def monitoring(self) -> Monitoring:
        """The prediction log, feedback, drift and shadow scoring."""
        return Monitoring(
            self.manager,
            self.prediction_log,
            self.feedback,
            self.drift,
            shadow_enabled=self.settings.shadow,
            shadow_sample=self.settings.shadow_sample,
        )

    # The server's life -----------------------------------------------------------------------------------------

    def build_server(self) -> None:
        """Build every part the server uses now, so a wiring mistake fails at start-up, not on a first request."""
        parts = (
            "keys", "limiter", "idempotency", "job_worker", "monitoring", "compat", "embeddings", "aliases",
            "generation", "llm_classifier",
        )  # fmt: skip
        for part in parts:
            getattr(self, part)

    async def start(self, *, migrate: bool) -> None:
        """Migrate (unless the caller did), then start loading models and every background task of the server."""
        if migrate:
            await asyncio.to_thread(self.db.migrate)
        self.manager.start()
        if self.job_worker is not None:
            self.job_worker.start()
        self.usage.start()
        self.monitoring.start()
        await self.encoder_batcher.start()
        if self.settings.preload_encoder:  # else loaded by the first request that needs it, so /ready does not wait
            await asyncio.to_thread(self.encoder.encoder)

    async def stop(self) -> None:
        """Stop what `start` started; what is still buffered (usage, the prediction log) is written first."""
        await self.encoder_batcher.stop()
        await self.manager.stop()
        await self.usage.stop()
        await self.monitoring.stop()
        await self.limiter.close()
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        if self.job_worker is not None:
            await asyncio.to_thread(self.job_worker.stop)
        if "llm_upstream" in self.__dict__ and self.llm_upstream is not None:
            await self.llm_upstream.close()
        self.db.dispose()
