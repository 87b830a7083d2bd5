"""Settings, read from `LABELWISE_*` environment variables. Built by entrypoints and passed down, never global."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a Labelwise process. Unknown `LABELWISE_*` variables are ignored; bad values fail fast."""

    model_config = SettingsConfigDict(env_prefix="LABELWISE_", extra="ignore")

    data_dir: Path = Field(default=Path("labelwise-data"), description="models, reports, uploads, SQLite file")
    database_url: SecretStr | None = Field(default=None, description="SQLAlchemy URL; default is SQLite in data_dir")
    redis_url: SecretStr | None = None
    log_level: str = "INFO"
    log_json: bool = True

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=0, ge=0, description="0 means one per core")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description="the workers' event loop; asyncio's measured a far shorter tail under load (bench/README.md)",
    )
    # Behind a proxy and in browsers (see api/middleware.py: RootPathMiddleware, and Starlette's CORSMiddleware)
    root_path: str = Field(
        default="",
        max_length=200,
        description="the path prefix the server is reached under behind a proxy (e.g. /labelwise), with the proxy "
        "stripping it or not; the docs, the web UI and their links use it",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='origins whose pages may call the API from a browser (CORS), e.g. ["https://app.example.com"]; '
        '["*"] allows any; empty (the default): none',
    )
    default_model: str | None = None
    max_text_chars: int = Field(default=10_000, ge=1)
    max_batch_texts: int = Field(default=512, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    batch_max_wait_ms: float = Field(default=2.0, ge=0.0)
    batch_max_size: int = Field(default=256, ge=1)
    queue_max: int = Field(default=2048, ge=1)
    cache_size: int = Field(default=10_000, ge=0)
    model_poll_seconds: float = Field(default=2.0, gt=0.0)
    # The sentence encoder (embeddings and zero-shot); see api/app.py and services/zeroshot.py
    encoder_dir: Path | None = Field(default=None, description="derived encoder model; default data_dir/encoder")
    preload_encoder: bool = Field(default=False, description="load the encoder at startup; /ready then waits for it")
    encoder_queue_texts: int = Field(default=2048, ge=1, description="texts waiting for the encoder before 503")
    encoder_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="how much lower the encoder threads' OS priority is than the event loop's (Linux nice; 0: same)",
    )
    zeroshot_cache_size: int = Field(default=256, ge=1, description="label sets whose zero-shot engines are kept")

    # Limits, credits and usage (see services/limits.py, credits.py, usage.py)
    default_rate_limit: str | None = Field(
        default=None, description="limit of a key without its own, e.g. '20/second; 1000/minute'; None: unlimited"
    )
    default_credits: int | None = Field(default=None, ge=0, description="balance of a new key; None: unlimited")
    credit_prices: dict[str, int] = Field(
        default_factory=lambda: {"linear": 1, "embedding": 5, "zeroshot": 5, "transformer": 5, "llm": 20},
        description="credits per text by engine (JSON in LABELWISE_CREDIT_PRICES)",
    )
    credit_price_default: int = Field(default=1, ge=0, description="credits per text for engines not listed")
    auth_failure_limit: str | None = Field(
        default="20/minute", description="failed authentications per client address before 429; None: no cap"
    )
    redis_key_prefix: str = Field(default="labelwise", min_length=1, max_length=64)
    redis_probe_seconds: float = Field(default=5.0, gt=0.0, description="how often to retry Redis while it is away")
    usage_flush_seconds: float = Field(default=1.0, gt=0.0)

    # Monitoring (see monitoring/): metrics, the prediction log, drift, rollout
    metrics_public: bool = Field(default=False, description="serve /metrics without a key (else: admin scope)")
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry spans and metrics, for a process that configures an SDK",
    )
    prediction_log_sample: float = Field(default=1.0, ge=0.0, le=1.0, description="share of texts logged")
    prediction_log_max_per_second: int = Field(
        default=100,
        ge=0,
        description="most texts one worker writes to the prediction log per second, whole requests; 0: no cap",
    )
    log_raw_text: bool = Field(default=False, description="store raw texts in the prediction log for every key")
    log_raw_text_keys: list[str] = Field(default_factory=list, description="key prefixes whose raw texts are stored")
    raw_text_retention_days: float = Field(default=30.0, gt=0.0, description="raw texts are deleted after this")
    prediction_log_flush_seconds: float = Field(default=1.0, gt=0.0)
    canary_share: float = Field(default=0.0, ge=0.0, le=1.0, description="share of traffic sent to name@canary")
    shadow: bool = Field(default=True, description="score traffic with name@shadow in the background, if it exists")
    shadow_sample: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="share of requests also scored by name@shadow: the shadow's work competes with live traffic "
        "for the same cores, so a sample keeps responses as fast as without it",
    )

    # Language models behind an OpenAI-compatible upstream (see llm/upstream.py and services/generation.py)
    llm_url: str | None = Field(
        default=None, description="the upstream's OpenAI base URL, e.g. http://127.0.0.1:8080/v1; None: no LLM routes"
    )
    llm_api_key: SecretStr | None = Field(default=None, description="sent to the upstream as a Bearer token")
    llm_model: str | None = Field(default=None, description="the upstream model used when a request names none")
    llm_connect_timeout_seconds: float = Field(default=2.0, gt=0.0)
    llm_timeout_seconds: float = Field(default=120.0, gt=0.0, description="longest wait for the upstream's next bytes")
    llm_max_connections: int = Field(default=32, ge=1, description="pooled connections to the upstream per worker")
    llm_credits_per_request: int = Field(default=1, ge=0, description="credits each generation request costs")
    llm_credits_per_1000_tokens: int = Field(
        default=10, ge=0, description="credits per 1,000 prompt plus completion tokens (rounded up per request)"
    )
    llm_token_rate_limit: str | None = Field(
        default=None, description="tokens each key may generate, e.g. '20000/minute'; None: no token limit"
    )

    # Training
    seed: int = 13
    min_examples_per_label: int = Field(default=2, ge=1)

    # Batch jobs (see services/jobs.py and services/job_worker.py)
    max_upload_bytes: int = Field(default=200_000_000, ge=1024, description="largest job or training upload")
    embedded_worker: bool = Field(default=True, description="run a job worker inside the server process")
    job_chunk_rows: int = Field(default=1000, ge=1)
    job_lease_seconds: float = Field(default=30.0, gt=0.0, description="a chunk's lease; renewed while worked on")
    job_max_attempts: int = Field(default=3, ge=1, description="attempts before a chunk, and its job, fail")
    worker_poll_seconds: float = Field(default=0.5, gt=0.0, description="how often an idle worker looks for work")
    label_studio_url: str | None = Field(
        default=None, description="the Label Studio the review queue is sent to (the HTTP routes use only this one)"
    )
    label_studio_token: SecretStr | None = Field(default=None, description="a Label Studio API token (legacy token)")

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (not value.startswith("/") or any(c in value for c in "?#% \t")):
            raise ValueError(f"{value[:50]!r}: a path such as /labelwise (starts with /, no query or spaces)")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, sep, host = origin.partition("://")
            if origin != "*" and (not sep or scheme not in ("http", "https") or not host or "/" in host):
                raise ValueError(f"{origin[:80]!r}: an origin is scheme://host[:port] (no path), or *")
        return value

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"log_level: {value!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("default_rate_limit", "auth_failure_limit", "llm_token_rate_limit")
    @classmethod
    def _rate_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        from labelwise.errors import InvalidRequest
        from labelwise.rate_limit import canonical_rate_limit

        try:
            return canonical_rate_limit(value, param=str(info.field_name))
        except InvalidRequest as exc:
            raise ValueError(exc.message) from None

    @field_validator("credit_prices")
    @classmethod
    def _prices(cls, value: dict[str, int]) -> dict[str, int]:
        negative = sorted(engine for engine, price in value.items() if price < 0)
        if negative:
            raise ValueError(f"credit_prices: negative price for {', '.join(negative)}")
        return value

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def resolved_database_url(self) -> str:
        """The database URL to connect to: the configured one, or SQLite inside the data directory."""
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                # psycopg 3 is the driver we ship; accept the plain scheme people paste.
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{(self.data_dir / 'labelwise.db').resolve()}"

    def non_default(self) -> dict[str, Any]:
        """Settings that differ from their defaults, secrets redacted: logged once at startup."""
        out: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value != info.get_default(call_default_factory=True):
                out[name] = "**********" if isinstance(value, SecretStr) else str(value)
        return out
