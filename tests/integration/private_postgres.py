"""A PostgreSQL server of a test's own (initdb into a temporary directory, pg_ctl start and stop on a free port), for
tests that take the database away; the shared server is never touched."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from tests.integration.real_server import free_port


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PrivatePostgres:
    """One cluster in a fresh temporary directory, trust authentication on 127.0.0.1 only; `close()` removes it. As
    root, it runs as the `postgres` user (initdb refuses root), so the directory is made where that user can reach
    it (a pytest `tmp_path` is private to root)."""

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="labelwise-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self.user: str | None = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            shutil.chown(self.root, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=3"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as when the database host goes away."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        extra: dict[str, Any] = {"user": self.user} if self.user is not None else {}
        subprocess.run(
            [str(self.bin / tool), *args], check=check, capture_output=True, timeout=60, cwd=self.root, **extra
        )
