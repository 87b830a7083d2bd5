"""Worker processes killed with SIGKILL mid-job, and two workers on one job: every row once, billed once.

Real `labelwise worker` processes against SQLite and PostgreSQL, a linear model, 10,000 and 20,000 rows.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from labelwise.bootstrap import Container
from labelwise.cli.worker_cmd import KILL_AFTER_WRITES_ENV
from labelwise.config import Settings
from labelwise.services.jobs import JobService
from labelwise.services.training import ModelService, TrainRequest
from labelwise.storage.repositories import KeyRepository, UsageRepository
from labelwise.storage.tables import JobRow

WORDS = {
    "card": ["card", "delivery", "arrived", "lost", "stolen"],
    "topup": ["top", "transfer", "money", "balance", "deposit"],
    "password": ["password", "reset", "login", "forgot", "locked"],
}
CREDITS = 1_000_000
PREFIX = "lwcrash1"


def run_worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from labelwise.cli import main; main()", "worker", "--json", "--poll", "0.05"]
    return subprocess.Popen([*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


class Setup:
    """A data directory and database with a published linear model and a funded key."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
        container = Container(self.settings, open_migrates=True)
        self.db = container.db
        store = container.store
        self.store = store
        self.train_file = write_rows(tmp_path / "train.csv", 90, labeled=True)
        ModelService(store).train(TrainRequest(name="intents", train=self.train_file, engine="linear"))
        KeyRepository(self.db).add(PREFIX, "0" * 64, "crash", ["classify"], credits=CREDITS)
        self.service: JobService = container.jobs
        self.env = {
            **os.environ,
            "LABELWISE_DATA_DIR": str(self.settings.data_dir),
            "LABELWISE_DATABASE_URL": database_url,
            "LABELWISE_JOB_LEASE_SECONDS": "1.0",
            "LABELWISE_JOB_MAX_ATTEMPTS": "10",
        }

    def use_chunks(self, rows: int) -> None:
        """Cut jobs submitted from now on into chunks of `rows` rows."""
        self.service.config = dataclasses.replace(self.service.config, chunk_rows=rows)

    def job(self, job_id: str) -> JobRow:
        job = self.service.repo.get(job_id)
        assert job is not None
        return job

    def check_exactly_once(self, job: JobRow, rows: int) -> None:
        assert (job.state, job.rows_done, job.rows_total, job.credits) == ("succeeded", rows, rows, rows)
        with self.service.results_path(job.id, PREFIX).open() as fh:
            ids = [int(row["id"]) for row in csv.DictReader(fh)]
        assert ids == list(range(rows))  # each row once, in input order
        balance = KeyRepository(self.db).by_prefix(PREFIX)
        assert balance is not None
        assert balance.credits == CREDITS - rows  # billed once: linear costs 1 credit a row
        today = datetime.now(UTC).date()
        usage = UsageRepository(self.db).query(today, today, PREFIX)
        assert sum(u.texts for u in usage) == rows

    def close(self) -> None:
        self.db.dispose()


def write_rows(path: Path, rows: int, *, labeled: bool = False) -> Path:
    labels = sorted(WORDS)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "label"] if labeled else ["id", "text"])
        for i in range(rows):
            label = labels[i % 3]
            text = f"{WORDS[label][i % 5]} {WORDS[label][(i // 5) % 5]} number {i}"
            writer.writerow([i, text, label] if labeled else [i, text])
    return path


@pytest.fixture
def setup(tmp_path: Path, database_url: str) -> Iterator[Setup]:
    item = Setup(tmp_path, database_url)
    yield item
    item.close()


def test_sigkill_at_several_points_loses_and_duplicates_nothing(setup: Setup, tmp_path: Path) -> None:
    setup.use_chunks(500)
    job = setup.service.submit_classify(PREFIX, write_rows(tmp_path / "in.csv", 10_000), "intents")
    # Early, during the first commit: the chunk file is written, the transaction recording it never runs.
    early = run_worker({**setup.env, KILL_AFTER_WRITES_ENV: "1"})
    assert early.wait(60) == -signal.SIGKILL
    assert setup.job(job.id).rows_done == 0
    # Middle, again between a chunk file and its commit.
    middle = run_worker({**setup.env, KILL_AFTER_WRITES_ENV: "8"})
    assert middle.wait(60) == -signal.SIGKILL
    assert 0 < setup.job(job.id).rows_done < 10_000
    # At an arbitrary moment, from outside, as soon as it has made progress.
    done_before = setup.job(job.id).rows_done
    outside = run_worker(setup.env)
    wait_until(lambda: setup.job(job.id).rows_done > done_before, 60, "progress after restart")
    outside.send_signal(signal.SIGKILL)
    assert outside.wait(60) == -signal.SIGKILL
    # A fresh worker finishes, taking over the dead workers' leases once they expire.
    last = run_worker(setup.env)
    try:
        wait_until(lambda: setup.job(job.id).state != "running", 120, "job to end")
    finally:
        last.send_signal(signal.SIGTERM)
        last.wait(60)
    setup.check_exactly_once(setup.job(job.id), 10_000)
    outputs = list(setup.service.job_dir(job.id).glob("out-*.jsonl"))
    recorded = {chunk.result_path for chunk in setup.service.repo.chunks(job.id)}
    assert len(recorded) == 20
    assert len(outputs) > len(recorded)  # the files of the killed commits exist, and were ignored


def test_two_workers_share_one_job(setup: Setup, tmp_path: Path) -> None:
    setup.use_chunks(200)
    job = setup.service.submit_classify(PREFIX, write_rows(tmp_path / "in.csv", 20_000), "intents")
    workers = [run_worker(setup.env), run_worker(setup.env)]
    try:
        wait_until(lambda: setup.job(job.id).state not in ("queued", "running"), 120, "job to end")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
    summaries = [orjson.loads(worker.communicate(timeout=60)[0].splitlines()[-1]) for worker in workers]
    setup.check_exactly_once(setup.job(job.id), 20_000)
    chunks = [summary["chunks"] for summary in summaries]
    assert sum(chunks) == 100
    assert min(chunks) > 0, f"one worker did everything: {chunks}"


def test_training_job_killed_after_publishing_publishes_one_version(setup: Setup) -> None:
    job = setup.service.submit_train(PREFIX, setup.train_file, TrainRequest(name="retrained", train=setup.train_file))
    # Killed right after the version is published, before the commit that marks the job done.
    killed = run_worker({**setup.env, KILL_AFTER_WRITES_ENV: "1"})
    assert killed.wait(60) == -signal.SIGKILL
    [published] = setup.store.versions("retrained")
    assert published.data["job"] == job.id
    assert setup.job(job.id).state == "running"
    # A fresh worker takes the chunk over once the lease expires and finishes the job with that version.
    last = run_worker(setup.env)
    try:
        wait_until(lambda: setup.job(job.id).state != "running", 60, "job to end")
    finally:
        last.send_signal(signal.SIGTERM)
        last.wait(60)
    done = setup.job(job.id)
    assert done.state == "succeeded", done.error
    assert done.result is not None
    assert [v.version for v in setup.store.versions("retrained")] == [published.version] == [done.result["version"]]
