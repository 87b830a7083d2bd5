"""Transformer training as a job on real `labelwise worker` processes: a worker killed with SIGKILL mid-training is
taken over and resumed from its checkpoint, and a training that outlives its lease keeps it."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_jobs_crash import run_worker, wait_until
from tests.support.transformers import tiny_base_model
from tests.unit.engines.test_engine_conformance import single_label_data

from labelwise.bootstrap import Container
from labelwise.config import Settings
from labelwise.data import ReadOptions
from labelwise.services.training import TrainRequest
from labelwise.storage.tables import JobRow

LEASE_SECONDS = 2.0


@dataclass
class Queue:
    container: Container
    env: dict[str, str]
    tmp_path: Path

    def submit(self, name: str, rows: int, **params: Any) -> JobRow:
        data = single_label_data(rows, 21)
        upload = self.tmp_path / f"{name}.csv"
        with upload.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows((text, gold[0]) for text, gold in zip(data.texts, data.labels, strict=True))
        defaults = {"base_model": str(tiny_base_model()), "learning_rate": 3e-3, "batch_size": 16, "threads": 1}
        request = TrainRequest(
            name=name, train=upload, engine="transformer", options=ReadOptions(), params=defaults | params
        )
        return self.container.jobs.submit_train("lwtest01", upload, request)

    def job(self, job_id: str) -> JobRow:
        row = self.container.jobs.repo.get(job_id)
        assert row is not None
        return row

    def state(self, job_id: str) -> str:
        return self.job(job_id).state


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    database_url = f"sqlite:///{tmp_path / 'labelwise.db'}"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    container = Container(settings, open_migrates=True)
    env = {
        **os.environ,
        "LABELWISE_DATA_DIR": str(settings.data_dir),
        "LABELWISE_DATABASE_URL": database_url,
        "LABELWISE_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    yield Queue(container, env, tmp_path)
    container.db.dispose()


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    worker.wait(60)


def test_a_killed_worker_is_resumed_by_one_that_keeps_its_lease(queue: Queue) -> None:
    """Worker A is killed with SIGKILL once the first epoch's checkpoint exists. Workers B and C then wait for
    work: one takes the job over when A's lease expires and resumes from the checkpoint, and trains for five lease
    lengths while renewing its lease, so the other never takes the job from it: two attempts, one version."""
    # Epochs without end and no early stopping, ended by a time budget of five lease lengths: each run outlives
    # its lease by construction, and A cannot finish before it is killed, whatever the machine's speed.
    budget = 5 * LEASE_SECONDS
    job = queue.submit("resumed", 60, epochs=100_000, patience=100_000, time_budget=budget, few_shot=0)
    checkpoint = queue.container.jobs.job_dir(job.id) / "checkpoint" / "checkpoint.pt"
    first = run_worker(queue.env)
    try:
        wait_until(checkpoint.is_file, 240, "a first checkpoint")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    workers = [run_worker(queue.env), run_worker(queue.env)]
    try:
        wait_until(lambda: queue.state(job.id) not in ("queued", "running"), 300, "the job to end")
    finally:
        for worker in workers:
            _stop(worker)
    finished = queue.job(job.id)
    assert finished.state == "succeeded", finished.error
    assert queue.container.jobs.repo.chunks(job.id)[0].attempts == 2  # A's, then one more that kept its lease
    versions = queue.container.store.repo.versions("resumed")
    assert len(versions) == 1
    training = versions[0].params["training"]
    assert training["resumed"] is True
    assert training["stopped_by"] == "time budget"
    assert training["train_seconds"] >= budget
