"""A real Label Studio for the round-trip test: started as a subprocess from its own virtualenv (`make install`
makes `.venv-labelstudio`; `LABELWISE_TEST_LABEL_STUDIO` names its `label-studio` command), SQLite in a temp
data directory.

A fresh data directory costs Label Studio minutes of database migrations; a migrated one starts in seconds. So the
first start migrates a template next to the virtualenv (`template-data`, kept between runs) and every test
starts on a copy of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

TOKEN = "0123456789abcdef0123456789abcdef01234567"
STARTUP_SECONDS = 900.0  # the first start migrates: minutes on a busy two-core machine


@dataclass(frozen=True)
class LabelStudio:
    url: str
    token: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.token}"}, timeout=60)


def command() -> Path | None:
    """The `label-studio` command, or None when it is not installed."""
    found = os.environ.get("LABELWISE_TEST_LABEL_STUDIO")
    path = Path(found) if found else Path(__file__).resolve().parents[2] / ".venv-labelstudio" / "bin" / "label-studio"
    return path if path.is_file() else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def _running(binary: Path, data_dir: Path, log: Path) -> Iterator[LabelStudio]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABELWISE_", "LABEL_STUDIO_", "DJANGO_"))}
    env |= {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": "reviewer@example.com",
        "LABEL_STUDIO_PASSWORD": "a-test-password-42",
        "LABEL_STUDIO_USER_TOKEN": TOKEN,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    }
    args = [str(binary), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("a") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir.parent)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"label-studio exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"label-studio did not answer within {STARTUP_SECONDS:.0f} s")
            time.sleep(0.5)
        yield LabelStudio(url, TOKEN)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def label_studio(tmp_path: Path) -> Iterator[LabelStudio]:
    """A Label Studio on a free loopback port with an empty copy of the migrated template."""
    binary = command()
    assert binary is not None
    template = binary.parent.parent / "template-data"
    if not template.is_dir():
        # Migrated under another name and renamed once complete, so an interrupted first run leaves no template.
        staging = template.with_name("template-data.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with _running(binary, staging, tmp_path / "label-studio-template.log"):
            pass
        staging.rename(template)
    data_dir = tmp_path / "label-studio"
    shutil.copytree(template, data_dir)
    with _running(binary, data_dir, tmp_path / "label-studio.log") as server:
        yield server
