"""Run the API under uvicorn (httptools parser; asyncio's event loop unless `event_loop` says uvloop), in one process
or several workers.

Several workers are fresh processes that rebuild `Settings` from the environment, so `serve` first writes the
settings it was given into `LABELWISE_*` variables. The schema is migrated once, here in the parent, before any
worker starts.

Each worker listens on its own socket bound with SO_REUSEPORT, and the kernel spreads new connections across them.
With one shared socket (uvicorn's own multi-worker mode) whichever worker wakes first accepts every connection
waiting: measured with 64 connections opened at once, one of two workers got 51 and the other 13, and the busy one
set the throughput and the tail latency for both. The parent binds the port without listening, which reserves it
(and resolves port 0) but takes no connections, then supervises: a worker that dies is started again, and SIGINT
or SIGTERM stops them all gracefully.

The event loop is asyncio's by default. Measured with the linear engine (bench/README.md, one-text classify at 64
connections): with one worker uvloop's p99 was 260-297 ms against asyncio's 37-41 ms at the same throughput (some
connections wait many rounds); with two workers asyncio's p99 was as short or shorter and 64-text batches ran 5-10%
faster. `event_loop="uvloop"` remains for those who measure otherwise on their machines.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from labelwise.config import Settings
from labelwise.logs import configure_logging

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
    # Each worker keeps its Prometheus values in files in one directory, so /metrics on any worker reports all of
    # them. prometheus-client reads the variable when it is imported, so it is set before this process imports the
    # app (which the workers then inherit by fork). A directory the operator chose is kept as it is; ours is fresh
    # per start and removed at exit.
    own_dir = None
    if count > 1 and not os.environ.get(METRICS_DIR_ENV):
        own_dir = tempfile.mkdtemp(prefix="labelwise-metrics-")
        os.environ[METRICS_DIR_ENV] = own_dir
    try:
        _serve(settings, count)
    finally:
        if own_dir is not None:
            os.environ.pop(METRICS_DIR_ENV, None)
            shutil.rmtree(own_dir, ignore_errors=True)


def _serve(settings: Settings, count: int) -> None:
    with _collector_paused():
        import uvicorn

        from labelwise.storage.db import Database

        db = Database(settings.resolved_database_url())
        try:
            db.migrate()
        finally:
            db.dispose()
        if count == 1 or sys.platform == "linux":
            # Workers fork from this process on Linux (see `_supervise`): import the app once, here.
            import labelwise.api.app  # noqa: F401
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": settings.event_loop,
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
    if hasattr(socket, "SO_REUSEPORT"):
        fork = sys.platform == "linux" and _metrics_in_files()
        _supervise(settings.host, settings.port, count, options, fork=fork)
    else:  # no SO_REUSEPORT (Windows): uvicorn's own workers on one shared socket
        uvicorn.run("labelwise.api.server:worker_app", factory=True, workers=count, **options)


def _metrics_in_files() -> bool:
    """Make this process's Prometheus values live in `PROMETHEUS_MULTIPROC_DIR`, as forked workers need; False when
    that cannot be done (the workers are then spawned fresh and import prometheus-client themselves).

    prometheus-client chooses where values live when it is first imported. A caller that imported it before
    `serve` set the variable (the `labelwise` CLI imports most of the package to build its commands) has values in
    memory, which each forked worker would keep to itself: /metrics then showed almost nothing. This parent has
    counted nothing yet, so its metrics are rebuilt empty with file-backed values. That uses two members of
    prometheus-client's metric classes that are not public (`_is_parent`, `_metric_init`, 0.26).
    """
    from prometheus_client import values
    from prometheus_client.metrics import MetricWrapperBase

    from labelwise.monitoring import metrics

    if getattr(values.ValueClass, "_multiprocess", False):
        return True
    try:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        for metric in vars(metrics).values():
            if isinstance(metric, MetricWrapperBase):
                if metric._is_parent():  # type: ignore[no-untyped-call]
                    metric.clear()  # children are made again, with the new value class, on first use
                else:
                    metric._metric_init()  # type: ignore[no-untyped-call]
        metrics._child.cache_clear()  # children the parent kept for itself (none yet; in case)
    except Exception:
        logger.warning("Prometheus values cannot be moved to files here; workers start fresh", exc_info=True)
        return False
    return bool(getattr(values.ValueClass, "_multiprocess", False))


_RESTART_LIMIT = 5  # workers dying within a minute of their start before the server gives up
_STOP_SECONDS = 15.0


def _supervise(host: str, port: int, count: int, options: dict[str, Any], *, fork: bool) -> None:
    """Start `count` workers on `host:port` (SO_REUSEPORT), restart any that dies, stop all on SIGINT/SIGTERM."""
    reserved = _reuseport_socket(host, port)  # bound, never listening: holds the port, gets no connections
    port = reserved.getsockname()[1]
    context: multiprocessing.context.BaseContext
    if fork:
        # Fork from a parent that has imported the app once (`serve` did): a worker starts in a fraction of a
        # second instead of importing FastAPI, SQLAlchemy and NumPy itself (about 2 s each, both at once on
        # 2 cores). The parent runs no threads and holds no connections at this point, which makes fork safe.
        context = multiprocessing.get_context("fork")
        gc.freeze()  # imported modules stay shared with the workers instead of being copied when collected
        inherited: socket.socket | None = reserved
    else:
        context = multiprocessing.get_context("spawn")
        inherited = None
    stop = threading.Event()

    def start(index: int) -> multiprocessing.process.BaseProcess:
        process = context.Process(
            target=_worker, args=(host, port, options, inherited), name=f"labelwise-worker-{index}"
        )
        process.start()
        return process

    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    workers = [start(i) for i in range(count)]
    started = [time.monotonic()] * count
    early_deaths = 0
    logger.info("serving", extra={"url": f"http://{host}:{port}", "workers": count})
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(workers):
                if process.is_alive():
                    continue
                if time.monotonic() - started[i] < 60.0:
                    early_deaths += 1
                logger.error("worker exited; starting another", extra={"worker": i, "exit_code": process.exitcode})
                if early_deaths > _RESTART_LIMIT:
                    raise SystemExit("workers keep exiting soon after they start; see the log above")
                workers[i], started[i] = start(i), time.monotonic()
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then exits
        deadline = time.monotonic() + _STOP_SECONDS
        for process in workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        reserved.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while the app is imported: the imports create a few hundred thousand objects and no
    garbage, and the collections they trigger cost about 0.3 of the 2.2 s before the first worker starts."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` with SO_REUSEPORT (not yet listening)."""
    addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = addresses[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.set_inheritable(False)
    return sock


def _worker(host: str, port: int, options: dict[str, Any], reserved: socket.socket | None) -> None:
    """One worker process: its own listening socket on the shared port, and uvicorn serving the app on it."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # the parent's handlers, when forked; uvicorn installs its own
        signal.signal(sig, signal.SIG_DFL)
    if reserved is not None:
        reserved.close()  # the parent's copy keeps the port reserved
    sock = _reuseport_socket(host, port)
    sock.listen(2048)
    import uvicorn

    config = uvicorn.Config("labelwise.api.server:worker_app", factory=True, **options)
    uvicorn.Server(config).run(sockets=[sock])


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
