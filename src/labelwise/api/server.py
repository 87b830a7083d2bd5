"""Run the API under uvicorn (uvloop event loop, httptools parser), in one process or several workers.

Several workers need an import string and a factory: each worker is a fresh process that rebuilds `Settings` from
the environment, so `serve` first writes the settings it was given into `LABELWISE_*` variables. The schema is
migrated once, here in the parent, before any worker starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import SecretStr

from labelwise.config import Settings
from labelwise.logs import configure_logging
from labelwise.storage.db import Database

if TYPE_CHECKING:
    from fastapi import FastAPI

logger = logging.getLogger(__name__)

ENV_PREFIX = "LABELWISE_"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve(settings: Settings, workers: int | None = None) -> None:
    """Migrate the database, then serve until stopped. `workers`: None means `settings.workers`, 0 one per core."""
    configure_logging(settings.log_level, json=settings.log_json)
    count = settings.workers if workers is None else workers
    count = count or os.cpu_count() or 1
    logger.info("starting", extra={"workers": count, "settings": settings.non_default()})
    db = Database(settings.resolved_database_url())
    try:
        db.migrate()
    finally:
        db.dispose()
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": False,  # one line per request comes from our own middleware
        "log_config": None,  # keep our JSON handler
        "timeout_graceful_shutdown": 10,
    }
    if count == 1:
        from labelwise.api.app import create_app

        uvicorn.run(create_app(settings, migrate=False), **options)
        return
    export_settings(settings)
    # Each worker keeps its Prometheus values in files here, so /metrics on any worker reports all of them. The
    # variable must be set before the workers start (prometheus-client reads it when a worker imports it). A
    # directory the operator chose is kept as it is; ours is fresh per start and removed at exit.
    own_dir = None
    if not os.environ.get(METRICS_DIR_ENV):
        own_dir = tempfile.mkdtemp(prefix="labelwise-metrics-")
        os.environ[METRICS_DIR_ENV] = own_dir
    try:
        uvicorn.run("labelwise.api.server:worker_app", factory=True, workers=count, **options)
    finally:
        if own_dir is not None:
            os.environ.pop(METRICS_DIR_ENV, None)
            shutil.rmtree(own_dir, ignore_errors=True)


def worker_app() -> FastAPI:
    """The factory each worker process calls: settings from the environment, logging, the app."""
    from labelwise.api.app import create_app

    settings = Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings, migrate=False)


def export_settings(settings: Settings, environ: dict[str, str] | None = None) -> None:
    """Write every setting into `LABELWISE_*` variables so that `Settings()` in a child process equals `settings`."""
    env: Any = os.environ if environ is None else environ
    for name in type(settings).model_fields:
        key = ENV_PREFIX + name.upper()
        value = getattr(settings, name)
        if value is None:
            env.pop(key, None)
        elif isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, dict | list):
            env[key] = json.dumps(value)  # pydantic-settings reads complex values as JSON
        else:
            env[key] = str(value)
