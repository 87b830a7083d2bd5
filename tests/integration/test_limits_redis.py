"""Rate limits shared through a real Redis: exact across two server processes, and a Redis that stops mid-test
costs no 5xx (limits fall back to per process, one warning) and is used again once it is back."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import redis
from tests.api.serving_fakes import (
    Fixture,
    http_status,
    make_settings,
    reset_keyword_engine,
    started,
    wait_all_ready,
    wait_until,
)
from tests.support.services import free_port, require_service

from labelwise.api.server import export_settings
from labelwise.config import Settings
from labelwise.services.keys import KeyChanges

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
BODY = {"text": "my card is late"}
# A server process that knows the test engine: with one worker, `serve` runs the app in this same process.
LAUNCH = (
    "from tests.api.serving_fakes import reset_keyword_engine; reset_keyword_engine(); "
    "from labelwise.api.server import serve; from labelwise.config import Settings; serve(Settings(), workers=1)"
)


class RedisServer:
    """Our own redis-server on a free port, to stop and start at will (never the shared one)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self.answers, timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def keys(self) -> int:
        return int(redis.Redis(port=self.port, socket_timeout=0.5).dbsize())


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        require_service("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def server_process(settings: Settings, log: Path) -> Iterator[str]:
    """`serve(settings)` in its own process on a free loopback port; its base URL once `/ready` answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    export_settings(settings.model_copy(update={"port": port, "log_level": "WARNING"}), env)
    env["PYTHONPATH"] = str(REPO)
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-c", LAUNCH], env=env, cwd=REPO, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or http_status(base + "/ready") == 200, timeout=60)
        assert process.poll() is None, log.read_text()[-2000:]
        wait_all_ready(base)
        yield base
    finally:
        process.terminate()
        process.wait(30)


async def burst(bases: list[str], key: str, per_server: int) -> list[int]:
    """`per_server` concurrent classify requests to each server at once; their statuses."""
    limits = httpx.Limits(max_connections=per_server)
    clients = [httpx.AsyncClient(base_url=b, limits=limits, timeout=30, headers={"x-api-key": key}) for b in bases]
    try:
        jobs = [c.post("/v1/classify", json=BODY) for c in clients for _ in range(per_server)]
        return [r.status_code for r in await asyncio.gather(*jobs)]
    finally:
        for client in clients:
            await client.aclose()


def test_limit_is_exact_across_two_server_processes(tmp_path: Path, redis_url: str) -> None:
    settings = make_settings(
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'shared.db'}",
        redis_url=redis_url,
        redis_key_prefix=f"test-{uuid.uuid4().hex[:12]}",
    )
    reset_keyword_engine()
    fx = Fixture(settings)
    fx.publish()
    key, _ = fx.keys.create("shared", ["classify"], settings=KeyChanges(rate_limit="100/minute"))
    with ExitStack() as stack:
        bases = [stack.enter_context(server_process(settings, tmp_path / f"server{i}.log")) for i in range(2)]
        statuses = asyncio.run(burst(bases, key, per_server=150))
    fx.close()
    assert sorted(statuses) == [200] * 100 + [429] * 200


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_redis_stopping_mid_test_costs_no_5xx(
    tmp_path: Path, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path / "data", f"sqlite:///{tmp_path / 'lw.db'}", redis_url=own_redis.url, redis_probe_seconds=0.2
    )
    reset_keyword_engine()
    fx = Fixture(settings)
    fx.publish()
    roomy, _ = fx.keys.create("roomy", ["classify"], settings=KeyChanges(rate_limit="1000/minute"))
    tight, _ = fx.keys.create("tight", ["classify"], settings=KeyChanges(rate_limit="5/minute"))
    caplog.set_level(logging.INFO, logger="labelwise.services.limits")
    async with started(settings) as app:

        async def statuses(key: str, n: int) -> list[int]:
            jobs = [app.client.post("/v1/classify", json=BODY, headers={"x-api-key": key}) for _ in range(n)]
            return [r.status_code for r in await asyncio.gather(*jobs)]

        assert await statuses(roomy, 20) == [200] * 20
        assert own_redis.keys() > 0  # the window lives in Redis
        own_redis.stop()
        during = await statuses(roomy, 60) + await statuses(tight, 8)
        assert all(code < 500 for code in during), during
        assert sorted(during[60:]) == [200] * 5 + [429] * 3  # per-process limits are still exact
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "Redis" in r.getMessage()]
        assert len(warnings) == 1  # once, not per request
        own_redis.start()
        limiter = app.app.container.limiter
        deadline = asyncio.get_running_loop().time() + 10
        while not limiter.backend.shared:
            assert asyncio.get_running_loop().time() < deadline, "shared limiting did not resume"
            assert await statuses(roomy, 1) == [200]
            await asyncio.sleep(0.05)
        assert await statuses(roomy, 5) == [200] * 5
        assert own_redis.keys() > 0  # back in Redis
    fx.close()
    assert any("Redis is back" in r.getMessage() for r in caplog.records)
