"""Two replicas, proven: two `labelwise serve` processes on different ports (each with its default workers)
sharing one PostgreSQL schema, one Redis (a fresh key prefix) and one data directory, plus a `labelwise worker`
process. The servers run no embedded job worker, so every job here is finished by that separate process.

What README.md's "Scaling out" promises is checked through real HTTP: a rate limit is exact across both replicas,
a model trained through one is served by the other within the model poll delay, an alias moved on one is followed
by the other, a job submitted to one is downloadable from the other, and credits are exact across both.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.serving_fakes import http_status, wait_all_ready, wait_until
from tests.conftest import encoder_cache_dir, fresh_postgres_schema
from tests.integration.test_limits_redis import burst
from tests.support.services import checked_redis_url, free_port

from labelwise.config import Settings
from labelwise.services.keys import split_key

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

LABELWISE = str(Path(sys.executable).parent / "labelwise")
# README.md: replicas poll for new versions and moved aliases every LABELWISE_MODEL_POLL_SECONDS and switch
# "within a few seconds". The deadline leaves room for a model load on a loaded 2-core machine.
POLL_SECONDS = Settings().model_poll_seconds
SWITCH_DEADLINE = 10 * POLL_SECONDS
TOPICS = {
    "sports": ["the striker scored", "the team won the match", "a late goal in the cup final", "the coach praised"],
    "business": ["shares fell on the warning", "the bank raised rates", "profits rose this quarter", "the market fell"],
    "tech": ["the new phone has a chip", "software update for laptops", "the app crashed again", "a faster processor"],
}


def training_csv(extra: str = "") -> str:
    """A small labeled file (three topics, 16 rows each); `extra` words change the texts, not the labels."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    for label, texts in TOPICS.items():
        for i in range(16):
            writer.writerow([f"{texts[i % 4]} {extra} {label} news item {i}", label])
    return out.getvalue()


@dataclass
class Replicas:
    a: str
    b: str
    admin: dict[str, str]
    worker_log: Path

    def client(self, base: str, key: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=base, headers=key or self.admin, timeout=60)

    def train(self, base: str, name: str, extra: str = "") -> dict[str, Any]:
        """Train through replica `base` (a job for the worker process); the finished job."""
        with self.client(base) as client:
            job = client.post("/v1/models", data={"name": name}, files={"file": ("train.csv", training_csv(extra))})
            assert job.status_code == 202, job.text
            return wait_for_job(client, job.json()["id"])

    def new_key(self, **fields: Any) -> dict[str, str]:
        with self.client(self.b) as client:
            created = client.post("/v1/keys", json={"scopes": ["classify"], **fields})
        assert created.status_code == 201, created.text
        return {"x-api-key": created.json()["key"]}


def wait_for_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    state: dict[str, Any] = {}

    def done() -> bool:
        state.update(client.get(f"/v1/jobs/{job_id}").json())
        return state["state"] in {"succeeded", "failed", "cancelled"}

    wait_until(done, timeout=180, interval=0.2)
    assert state["state"] == "succeeded", state
    return state


def on_every_worker(base: str, check: Callable[[httpx.Response], bool], request: Callable[[httpx.Client], Any]) -> bool:
    """True when a run of fresh connections (spread by the kernel over the replica's workers) all pass `check`."""
    for _ in range(8):
        with httpx.Client(base_url=base, timeout=10) as client:
            if not check(request(client)):
                return False
    return True


def serves(base: str, key: dict[str, str], model: str, version: str) -> bool:
    def request(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/classify", json={"text": "the striker scored", "model": model}, headers=key)

    return on_every_worker(base, lambda r: r.status_code == 200 and r.json()["model_version"] == version, request)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("replicas")
    redis_url = checked_redis_url()
    with fresh_postgres_schema() as database_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
        env.update(
            LABELWISE_DATA_DIR=str(root / "data"),
            LABELWISE_DATABASE_URL=database_url,
            LABELWISE_REDIS_URL=redis_url,
            LABELWISE_REDIS_KEY_PREFIX=f"replicas-{uuid.uuid4().hex[:12]}",
            LABELWISE_EMBEDDED_WORKER="false",
            LABELWISE_DEFAULT_MODEL="topics",
            LABELWISE_ENCODER_DIR=str(encoder_cache_dir()),
            LABELWISE_LOG_LEVEL="WARNING",
        )
        admin = subprocess.run(
            [LABELWISE, "keys", "create", "--name", "admin", "--scope", "admin", "--scope", "train"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            bases = []
            for name in ("a", "b"):
                port = free_port()
                server = _start([LABELWISE, "serve", "--port", str(port)], env, root / f"{name}.log")
                processes.append(server)
                base = f"http://127.0.0.1:{port}"
                wait_until(
                    lambda s=server, b=base: s.poll() is not None or http_status(b + "/ready") == 200, timeout=90
                )
                assert server.poll() is None, (root / f"{name}.log").read_text()[-3000:]
                wait_all_ready(base)
                bases.append(base)
            worker_log = root / "worker.log"
            processes.append(_start([LABELWISE, "worker", "--poll", "0.2"], env, worker_log))
            cluster = Replicas(bases[0], bases[1], {"x-api-key": admin}, worker_log)
            # The model every test classifies with: trained through A, waited for on both.
            cluster.train(cluster.a, "topics")
            for base in bases:
                wait_until(lambda b=base: serves(b, cluster.admin, "topics", "1.0.0"), timeout=SWITCH_DEADLINE)
            yield cluster
        finally:
            for process in processes:
                _stop(process)


def test_a_model_trained_through_a_is_served_by_b(replicas: Replicas) -> None:
    job = replicas.train(replicas.a, "fresh")
    assert job["result"]["version"] == "1.0.0"
    finished = time.monotonic()
    wait_until(lambda: serves(replicas.b, replicas.admin, "fresh", "1.0.0"), timeout=SWITCH_DEADLINE)
    print(f"replica B served the new model {time.monotonic() - finished:.1f} s after its job finished on A")


def test_an_alias_moved_on_b_is_followed_by_a(replicas: Replicas) -> None:
    replicas.train(replicas.b, "topics", extra="again")  # same labels: 1.1.0, which production follows
    wait_until(lambda: serves(replicas.a, replicas.admin, "topics", "1.1.0"), timeout=SWITCH_DEADLINE)
    with replicas.client(replicas.b) as client:
        moved = client.put("/v1/models/topics/aliases/production", json={"version": "1.0.0"})
    assert moved.status_code == 200, moved.text
    wait_until(lambda: serves(replicas.a, replicas.admin, "topics", "1.0.0"), timeout=SWITCH_DEADLINE)
    with replicas.client(replicas.b) as client:
        assert client.delete("/v1/models/topics/aliases/production").status_code == 200  # back to following newest


def test_a_job_submitted_to_a_is_finished_by_the_worker_and_downloadable_from_b(replicas: Replicas) -> None:
    texts = [f"{text} {i}" for i in range(40) for text in ("the striker scored", "shares fell", "the phone chip")]
    upload = "text\n" + "".join(f"{t}\n" for t in texts)
    with replicas.client(replicas.a) as a, replicas.client(replicas.b) as b:
        submitted = a.post("/v1/jobs", data={"model": "topics@latest"}, files={"file": ("texts.csv", upload)})
        assert submitted.status_code == 202, submitted.text
        job = wait_for_job(b, submitted.json()["id"])  # the servers run no job worker: the worker process did it
        assert job["rows_done"] == len(texts)
        results = b.get(f"/v1/jobs/{job['id']}/results")
        assert results.status_code == 200, results.text
        rows = list(csv.DictReader(io.StringIO(results.text)))
        expected = b.post("/v1/batch", json={"texts": texts, "model": job["model"].replace("@", ":")})
    assert expected.status_code == 200, expected.text
    assert [row["text"] for row in rows] == texts
    assert [row["label"] for row in rows] == [item["predicted"][0] for item in expected.json()["results"]]


def test_a_rate_limit_admits_exactly_n_across_both(replicas: Replicas) -> None:
    key = replicas.new_key(name="limited", rate_limit="30/minute")
    statuses = asyncio.run(burst([replicas.a, replicas.b], key["x-api-key"], per_server=40))
    assert sorted(statuses) == [200] * 30 + [429] * 50


def test_credits_are_exact_across_both(replicas: Replicas) -> None:
    key = replicas.new_key(name="metered", credits=25)  # linear: 1 credit per text

    async def spend() -> list[int]:
        clients = [httpx.AsyncClient(base_url=base, headers=key, timeout=60) for base in (replicas.a, replicas.b)]
        try:
            sends = [c.post("/v1/classify", json={"text": f"the bank {i}"}) for i in range(20) for c in clients]
            return [r.status_code for r in await asyncio.gather(*sends)]
        finally:
            for client in clients:
                await client.aclose()

    statuses = asyncio.run(spend())
    assert sorted(statuses) == [200] * 25 + [402] * 15
    with replicas.client(replicas.a) as client:
        balance = client.get(f"/v1/keys/{split_key(key['x-api-key'])}").json()["credits"]
    assert balance == 0
