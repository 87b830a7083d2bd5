"""The API under a real uvicorn on loopback: raw HTTP limits, hot reload, coalescing, and `serve` with workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.api.serving_fakes import (
    Fixture,
    KeywordEngine,
    corrupt,
    http_status,
    make_settings,
    reset_keyword_engine,
    serving,
    trained,
    wait_until,
)

from labelwise.api import create_app
from labelwise.api.schemas.classify import ClassifyResponse
from labelwise.config import Settings

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(autouse=True)
def keyword_engine() -> None:
    reset_keyword_engine()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def fx(settings: Settings) -> Iterator[Fixture]:
    fixture = Fixture(settings)
    fixture.publish("intents")
    yield fixture
    fixture.close()


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send a request head (and maybe part of a body) on a raw socket; return what the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        # The server may answer and close before we finish sending: that is the point.
        with contextlib.suppress(OSError):
            conn.sendall(head.encode() + body)
        chunks = []
        while True:
            try:
                data = conn.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b'"error"' in b"".join(chunks):
                break
        return b"".join(chunks)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_classify_over_http(settings: Settings, fx: Fixture) -> None:
    key = fx.key()
    with serving(create_app(settings)) as base:
        r = httpx.post(base + "/v1/classify", json={"text": "my card is late"}, headers={"x-api-key": key})
    assert r.status_code == 200
    body = ClassifyResponse.model_validate(r.json())
    assert body.predicted == ["card"]
    assert r.headers["x-request-id"] == body.request_id
    assert "x-queue-time" in r.headers
    assert "x-inference-time" in r.headers


def test_wrong_key_with_a_declared_50mb_body_is_refused_without_reading_it(settings: Settings, fx: Fixture) -> None:
    good = fx.key()
    with serving(create_app(settings)) as base:
        port = port_of(base)
        head = (
            "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {FIFTY_MB}\r\nx-api-key: lw_00000000_wrong\r\n\r\n"
        )
        started = time.monotonic()
        answer = raw_request(port, head, b'{"text": "' + b"a" * 65536)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer")
        # Only 64 KiB of the 50 MB was ever sent: an answer at all proves the body was not awaited.
        assert time.monotonic() - started < 10
        too_big = head.replace("lw_00000000_wrong", good)
        assert raw_request(port, too_big).startswith(b"HTTP/1.1 413")


def test_chunked_body_over_the_limit_is_413(settings: Settings, fx: Fixture) -> None:
    key = fx.key()
    with serving(create_app(settings)) as base:
        head = (
            "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nx-api-key: {key}\r\n\r\n"
        )
        chunk = b" " * 500_000
        body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(5))
        answer = raw_request(port_of(base), head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer


def test_new_version_served_and_corrupt_version_refused(settings: Settings, fx: Fixture) -> None:
    headers = {"x-api-key": fx.key()}

    def version() -> str:
        r = httpx.post(base + "/v1/classify", json={"text": "card", "model": "intents"}, headers=headers)
        assert r.status_code == 200, r.text
        return str(r.json()["model_version"])

    with serving(create_app(settings)) as base:
        assert version() == "1.0.0"
        fx.publish("intents", trained(boost=8.0))
        wait_until(lambda: version() == "1.1.0", timeout=5)  # poll interval here: 0.1 s
        broken = fx.publish("intents", trained(boost=2.0))
        corrupt(fx.store, broken)
        fx.publish("other")  # a later change proves the server has polled past the broken version
        wait_until(lambda: _models(base, headers) >= 2, timeout=5)
        assert version() == "1.1.0"


def _models(base: str, headers: dict[str, str]) -> int:
    return sum("versions" in m for m in httpx.get(base + "/v1/models", headers=headers).json()["data"])


def test_concurrent_http_requests_are_coalesced(settings: Settings, fx: Fixture) -> None:
    key = fx.key()
    app = create_app(settings.model_copy(update={"cache_size": 0}))
    with serving(app) as base:
        KeywordEngine.calls.clear()
        KeywordEngine.delay_seconds = 0.01

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=64)
            async with httpx.AsyncClient(base_url=base, limits=limits, headers={"x-api-key": key}) as client:
                jobs = [client.post("/v1/classify", json={"text": f"card {i}"}) for i in range(128)]
                return [r.status_code for r in await asyncio.gather(*jobs)]

        statuses = asyncio.run(burst())
    assert statuses == [200] * 128
    assert sum(KeywordEngine.calls) == 128
    assert len(KeywordEngine.calls) < 100, KeywordEngine.calls
    assert max(KeywordEngine.calls) >= 8, KeywordEngine.calls


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_serve_with_two_workers_migrates_once_and_becomes_ready(tmp_path: Path, loop: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {"LABELWISE_DATA_DIR": str(tmp_path / "data"), "LABELWISE_PORT": str(port), "LABELWISE_LOG_LEVEL": "INFO"}
    if loop != "asyncio":  # asyncio's is the default
        env["LABELWISE_EVENT_LOOP"] = loop
    code = "from labelwise.api.server import serve; from labelwise.config import Settings; serve(Settings(), workers=2)"
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: http_status(f"http://127.0.0.1:{port}/ready") == 200, timeout=30)
        assert (tmp_path / "data" / "labelwise.db").exists()
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401
        if Path("/proc/self/maps").exists():  # Linux: is uvloop's extension mapped into the workers?
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
            mapped = ["/uvloop/" in Path(f"/proc/{pid}/maps").read_text() for pid in children]
            assert mapped == [loop == "uvloop"] * 2
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-2000:]
    assert stderr.count('"msg":"starting"') == 1
    assert "Traceback" not in stderr


def _established_by_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections to `port` each process holds (from /proc, Linux)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(fields[9])
    counts = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        held = 0
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                held += target.startswith("socket:[") and target[8:-1] in inodes
        counts[pid] = held
    return counts


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections through Linux's /proc")
def test_two_workers_share_a_burst_of_connections(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {"LABELWISE_DATA_DIR": str(tmp_path / "data"), "LABELWISE_PORT": str(port)}
    code = "from labelwise.api.server import serve; from labelwise.config import Settings; serve(Settings(), workers=2)"
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{base}/health") == 200, timeout=30)
        children = [int(p) for p in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]

        async def burst() -> dict[int, int]:
            # 64 connections opened at once and kept open, as a load generator or a proxy's pool does.
            async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=64)) as client:
                statuses = await asyncio.gather(*(client.get("/health") for _ in range(64)))
                assert {r.status_code for r in statuses} == {200}
                return _established_by_process(port, children)

        held = asyncio.run(burst())
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-2000:]
    busy = sorted(n for n in held.values() if n)
    # The kernel hashes connections over the workers' own sockets: 16 or fewer of 64 on one side has a chance of
    # about 5e-5 (one shared socket gave 13 against 51, the first worker to wake taking the whole burst).
    assert len(busy) == 2, held
    assert sum(busy) == 64, held
    assert busy[0] > 16, held
