"""`make container-smoke`: build the image with podman and use it as compose.yaml does, with no registry.

Steps, each timed: a Debian bookworm base made with debootstrap and `podman import` (reused while it exists; the
official Python image cannot be pulled here, so it is the Dockerfile's BASE_IMAGE), the image build, an API container
and a job-worker container on the host's network, sharing a data volume, the PostgreSQL (a fresh schema) and the
Redis (a fresh key prefix) of the test suite. Then: the first start's printed admin key, /ready, a model trained over
HTTP (a job the worker container runs), a classify request, and the image's HEALTHCHECK. Not part of `make test`:
it takes minutes and needs root, podman, runc and debootstrap (installed with apt-get when missing).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("LABELWISE_SMOKE_DIR", "/var/tmp/labelwise-smoke"))
MIRROR = os.environ.get("LABELWISE_SMOKE_MIRROR", "http://deb.debian.org/debian")
BASE = "localhost/labelwise-base:bookworm"
IMAGE = "localhost/labelwise:smoke"
PORT = int(os.environ.get("LABELWISE_SMOKE_PORT", "18231"))
POSTGRES = os.environ.get("LABELWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("LABELWISE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TRAIN_CSV = "text,label\n" + "".join(
    f"{t},{label}\n"
    for label, texts in {
        "sports": ["the striker scored twice", "the team won the cup final", "a late goal won the match"],
        "business": ["shares fell on the profit warning", "the bank raised interest rates", "profits rose again"],
    }.items()
    for t in texts
)


def step(name: str, action: Callable[[], object]) -> object:
    started = time.monotonic()
    print(f"== {name}", flush=True)
    result = action()
    print(f"   {name}: {time.monotonic() - started:.1f} s", flush=True)
    return result


def podman(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
    command = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args]
    return subprocess.run(command, check=check, text=True, capture_output=capture)


def ensure_tools() -> None:
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "podman", "runc", "debootstrap"], check=True)
    WORK.mkdir(parents=True, exist_ok=True)
    # The sandbox refuses podman's default ulimits; an empty list leaves the host's.
    conf = WORK / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    os.environ["CONTAINERS_CONF"] = str(conf)


def ensure_base() -> None:
    if podman("image", "exists", BASE, check=False).returncode == 0:
        print("   base image exists; reused")
        return
    rootfs = WORK / "rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        # What the official python:3.11-slim image offers the Dockerfile: python3 with venv and headers.
        packages = "python3,python3-venv,python3-dev,ca-certificates"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={packages}", "bookworm", str(rootfs), MIRROR], check=True
        )
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "import", "-", BASE],
        stdin=tar.stdout,
        check=True,
    )
    assert tar.wait() == 0


def build() -> None:
    mounts: list[str] = []
    ca = os.environ.get("PIP_CERT")
    if ca:
        # This host reaches PyPI through a proxy whose CA only the host trusts: lend pip inside the build that CA
        # (mounted for the build's RUN steps only; nothing of it stays in the image).
        conf = WORK / "pip.conf"
        conf.write_text("[global]\ncert = /etc/ssl/certs/host-ca.crt\n")
        mounts = ["-v", f"{ca}:/etc/ssl/certs/host-ca.crt:ro", "-v", f"{conf}:/etc/pip.conf:ro"]
    # Docker's image format: the OCI format has no HEALTHCHECK, and podman would drop it.
    podman(
        "build",
        "--format",
        "docker",
        "--network=host",
        *mounts,
        "--build-arg",
        f"BASE_IMAGE={BASE}",
        "-t",
        IMAGE,
        str(REPO),
    )


@contextmanager
def fresh_schema() -> Iterator[str]:
    schema = f"smoke_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        # The container gets the plain scheme, as compose.yaml writes it.
        plain = "postgresql://" + POSTGRES.split("://", 1)[1]
        yield f"{plain}{'&' if '?' in plain else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run_container(name: str, volume: str, database: str, prefix: str, *command: str) -> None:
    podman("rm", "-f", name, check=False, capture=True)
    env = {
        "LABELWISE_DATABASE_URL": database,
        "LABELWISE_REDIS_URL": REDIS,
        "LABELWISE_REDIS_KEY_PREFIX": prefix,
        "LABELWISE_EMBEDDED_WORKER": "false",
        "LABELWISE_PORT": str(PORT),
    }
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    podman("run", "-d", "--name", name, "--network=host", "-v", f"{volume}:/data", *flags, IMAGE, *command)


def wait_for(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def exercise(api: str) -> None:
    base = f"http://127.0.0.1:{PORT}"
    started = time.monotonic()
    wait_for("/ready", lambda: status(base + "/ready") == 200, 120)
    print(f"   start to /ready: {time.monotonic() - started:.1f} s", flush=True)
    logs = podman("logs", api, capture=True)
    found = re.search(r"LABELWISE_API_KEY=(\S+)", logs.stdout + logs.stderr)
    assert found, "the first start printed no API key"
    headers = {"x-api-key": found.group(1)}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        job = client.post("/v1/models", data={"name": "smoke"}, files={"file": ("train.csv", TRAIN_CSV)})
        assert job.status_code == 202, job.text
        url = f"/v1/jobs/{job.json()['id']}"
        wait_for("training job", lambda: client.get(url).json()["state"] in {"succeeded", "failed"}, 120)
        assert client.get(url).json()["state"] == "succeeded", client.get(url).text
        # The server notices the new model by polling the store (model_poll_seconds).
        wait_for(
            "model served", lambda: client.post("/v1/classify", json={"text": "x", "model": "smoke"}).is_success, 30
        )
        answer = client.post("/v1/classify", json={"text": "the striker scored a goal", "model": "smoke"})
        assert answer.status_code == 200, answer.text
        print(f"   classify: {answer.json()['predicted']}", flush=True)
        assert answer.json()["predicted"] == ["sports"]
    check = podman("healthcheck", "run", api, check=False, capture=True)
    print(f"   HEALTHCHECK: exit {check.returncode} {check.stdout.strip()} {check.stderr.strip()}", flush=True)
    assert check.returncode == 0


def main() -> int:
    total = time.monotonic()
    step("tools", ensure_tools)
    step("base image (debootstrap + podman import)", ensure_base)
    step("image build", build)
    size = podman("image", "inspect", IMAGE, "--format", "{{.Size}}", capture=True).stdout.strip()
    print(f"   image size: {int(size) / 1e6:.0f} MB", flush=True)
    volume = f"labelwise-smoke-{uuid.uuid4().hex[:8]}"
    api, worker = f"{volume}-api", f"{volume}-worker"
    podman("volume", "create", volume, capture=True)
    try:
        with fresh_schema() as database:
            step("start API container", lambda: run_container(api, volume, database, volume, "serve"))
            step("start worker container", lambda: run_container(worker, volume, database, volume, "worker"))
            try:
                step("ready, key, train over HTTP, classify, healthcheck", lambda: exercise(api))
            except BaseException:
                for name in (api, worker):
                    print(f"-- logs of {name}:\n" + podman("logs", name, check=False, capture=True).stderr[-3000:])
                raise
            finally:
                podman("rm", "-f", "-t", "10", api, worker, check=False, capture=True)
    finally:
        podman("volume", "rm", "-f", volume, check=False, capture=True)
    print(f"container smoke test passed in {time.monotonic() - total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
