"""A real Label Studio for the round-trip test: started as a subprocess from its own virtualenv, SQLite in a temp
data directory.

`make install` makes the virtualenv in a cache outside the repository, keyed on the Label Studio and Python
versions (`<LABELWISE_CACHE>/label-studio-<version>-py<python>/venv`, LABELWISE_CACHE defaulting to
~/.cache/labelwise), so a clean clone on the same machine finds it; `LABELWISE_TEST_LABEL_STUDIO` may name another
`label-studio` command. A fresh data directory costs Label Studio minutes of database migrations; a migrated one
starts in seconds. So the first start ever migrates a template in the same cache (`template-data`, under a lock,
renamed into place only when complete) and every test run starts on a copy of it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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


PIN = (Path(__file__).parent / "label-studio.pin").read_text().strip()  # what the Makefile installs


def home() -> Path:
    """The cache directory of this Label Studio version (the Makefile computes the same path)."""
    root = os.environ.get("LABELWISE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelwise"
    )
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return Path(root) / f"{PIN.replace('==', '-')}-py{python}"


def command() -> Path | None:
    """The `label-studio` command, or None when it is not installed."""
    found = os.environ.get("LABELWISE_TEST_LABEL_STUDIO")
    path = Path(found) if found else home() / "venv" / "bin" / "label-studio"
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
        # Nothing leaves the machine: Label Studio reports errors to Sentry, collects analytics and asks PyPI for
        # its latest version unless told not to.
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "LATEST_VERSION_CHECK": "false",
    }
    url = f"http://127.0.0.1:{port}"
    # Bound to loopback only (`--internal-host`; Label Studio's default is every interface): its test password and
    # token are in this file.
    args = [str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--host", url, "--port", str(port)]
    with log.open("a") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=data_dir.parent)
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


def _template(binary: Path, tmp_path: Path) -> Path:
    """The migrated template data directory of this Label Studio, made (under a lock) when missing: in the cache
    for the installed one, else in the virtualenv LABELWISE_TEST_LABEL_STUDIO names."""
    cache = home() if binary == home() / "venv" / "bin" / "label-studio" else binary.parent.parent
    template = cache / "template-data"
    with (cache / "template.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run migrating it: wait, then use its template
        if not template.is_dir():
            # Migrated under a temporary name and renamed once complete: an interrupted run leaves no template.
            staging = Path(tempfile.mkdtemp(prefix="template-data.partial-", dir=cache))
            try:
                with _running(binary, staging, tmp_path / "label-studio-template.log"):
                    pass
                staging.rename(template)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return template


@contextmanager
def label_studio(tmp_path: Path) -> Iterator[LabelStudio]:
    """A Label Studio on a free loopback port with an empty copy of the migrated template."""
    binary = command()
    assert binary is not None
    template = _template(binary, tmp_path)
    data_dir = tmp_path / "label-studio"
    shutil.copytree(template, data_dir)
    with _running(binary, data_dir, tmp_path / "label-studio.log") as server:
        yield server
