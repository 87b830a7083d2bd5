"""The container files: compose.yaml's services and settings, the Dockerfile's shape, and the entry point's
first-start key (run for real against a SQLite data directory). Building and running the image is
`make container-smoke` (tests/containers/container_smoke.py)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from labelwise.services.keys import KeyService
from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository
from tests.deploy.settings_names import REPO, names_in, unknown_settings

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
ENTRYPOINT = REPO / "deploy" / "docker-entrypoint.sh"


def test_compose_runs_labelwise_a_worker_postgres_and_redis() -> None:
    from labelwise.cli.app import app

    services = COMPOSE["services"]
    assert set(services) == {"labelwise", "worker", "postgres", "redis"}
    assert services["labelwise"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    commands = {c.name for c in app.registered_commands}
    assert {"serve", "worker"} <= commands
    assert set(COMPOSE["volumes"]) == {"data", "db"}
    for name in ("labelwise", "worker"):
        assert "data:/data" in services[name]["volumes"]
        env = services[name]["environment"]
        assert env["LABELWISE_DATABASE_URL"].startswith("postgresql://")
        assert env["LABELWISE_REDIS_URL"].startswith("redis://redis:")
    assert "db:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_container_files_name_only_real_settings() -> None:
    names = set()
    for path in (REPO / "compose.yaml", REPO / "Dockerfile", ENTRYPOINT):
        names |= names_in(path.read_text())
    assert {"LABELWISE_DATABASE_URL", "LABELWISE_ENCODER_DIR", "LABELWISE_DATA_DIR"} <= names
    assert unknown_settings(names) == []


def test_dockerfile_shape() -> None:
    stages = re.findall(r"^FROM (\S+) AS (\w+)", DOCKERFILE, flags=re.MULTILINE)
    assert stages == [("${BASE_IMAGE}", "build"), ("${BASE_IMAGE}", "runtime")]
    assert re.search(r"^ARG BASE_IMAGE=python:3\.\d+-slim", DOCKERFILE, flags=re.MULTILINE)
    runtime = DOCKERFILE.split(" AS runtime", 1)[1]
    assert "gcc" not in runtime  # the compiler stays in the build stage
    assert re.search(r"^USER 10001", runtime, flags=re.MULTILINE)
    assert "HEALTHCHECK" in runtime
    assert "/health" in runtime
    assert "prepare(Path('/opt/labelwise/encoder'))" in DOCKERFILE  # derived at build time ...
    assert "LABELWISE_ENCODER_DIR=/opt/labelwise/encoder" in runtime  # ... and used from there


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _entrypoint(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env["LABELWISE_DATA_DIR"] = str(data)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, check=False)


def test_entrypoint_prints_a_working_admin_key_on_the_first_start_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # `serve --help` takes the entry point's first-start path without starting a server.
    first = _entrypoint(data, "serve", "--help")
    assert first.returncode == 0, first.stderr
    found = re.search(r"export LABELWISE_API_KEY=(\S+)", first.stdout)
    assert found, first.stdout
    key_file = data / "admin.key"
    assert key_file.read_text().strip() == found.group(1)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    db = Database(f"sqlite:///{data / 'labelwise.db'}")
    try:
        principal = KeyService(KeyRepository(db)).verify(found.group(1))
        assert principal is not None
        assert set(principal.scopes) == {"admin", "train", "classify"}
    finally:
        db.dispose()
    again = _entrypoint(data, "serve", "--help")
    assert again.returncode == 0
    assert "LABELWISE_API_KEY" not in again.stdout
    other = _entrypoint(tmp_path / "other", "models", "list", "--json")  # not `serve`: no key
    assert "LABELWISE_API_KEY" not in other.stdout
