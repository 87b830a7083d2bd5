"""Jobs service and worker, in process, on SQLite and PostgreSQL: chunking, leases, exactly-once, billing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from tests.api.serving_fakes import KeywordEngine, reset_keyword_engine, trained

from labelwise.errors import DataError, InsufficientBalance, NotFound
from labelwise.registry.store import ModelStore
from labelwise.services.credits import PriceList
from labelwise.services.job_worker import JobWorker
from labelwise.services.jobs import JobConfig, JobService
from labelwise.services.training import TrainRequest
from labelwise.storage.db import Database
from labelwise.storage.jobs_repository import ClaimedChunk, IdempotencyRepository, JobRepository
from labelwise.storage.repositories import KeyRepository, ModelRepository, UsageRepository

WORDS = ["my card has not arrived", "top up with bank transfer", "reset the password please"]


@pytest.fixture
def service(database: Database, tmp_path: Path) -> JobService:
    reset_keyword_engine()
    store = ModelStore(tmp_path / "models", ModelRepository(database))
    store.publish("intents", trained(), metrics={}, data={})
    return JobService(
        JobRepository(database),
        KeyRepository(database),
        store,
        PriceList({KeywordEngine.name: 2}),
        JobConfig(root=tmp_path / "jobs", chunk_rows=10, lease_seconds=30.0, max_attempts=2),
    )


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        for i in range(rows):
            writer.writerow([i, f"{WORDS[i % 3]} {i}"])
    return path


def drain(worker: JobWorker, limit: int = 1000) -> None:
    for _ in range(limit):
        if not worker.run_once():
            return
    raise AssertionError("the worker never ran out of work")


def test_job_runs_to_results_in_input_order_and_is_billed_once(service: JobService, tmp_path: Path) -> None:
    KeyRepository(service.repo.db).add("lwtest01", "0" * 64, "k", ["classify"], credits=1000)
    job = service.submit_classify("lwtest01", write_csv(tmp_path / "in.csv", 95), "intents")
    assert (job.rows_total, job.chunks_total, job.state) == (95, 10, "queued")
    drain(JobWorker(service))
    progress = service.progress(job.id, "lwtest01")
    assert (progress.job.state, progress.job.rows_done, progress.job.credits) == ("succeeded", 95, 190)
    with service.results_path(job.id, "lwtest01").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["id"]) for r in rows] == list(range(95))
    assert rows[0]["label"] == "card"
    assert rows[1]["label"] == "topup"
    assert KeyRepository(service.repo.db).by_prefix("lwtest01").credits == 1000 - 190  # type: ignore[union-attr]
    today = datetime.now(UTC).date()
    usage = UsageRepository(service.repo.db).query(today, today, "lwtest01")
    assert [(u.route, u.texts, u.credits) for u in usage] == [("/v1/jobs", 95, 190)]


def test_lost_lease_commits_nothing_and_the_new_owner_counts(service: JobService, tmp_path: Path) -> None:
    job = service.submit_classify("lwtest02", write_csv(tmp_path / "in.jsonl.csv", 10), "intents")
    first = service.repo.claim("a", lease_seconds=-1.0, max_attempts=5)  # already expired
    assert first is not None
    second = service.repo.claim("b", lease_seconds=30.0, max_attempts=5)
    assert second is not None
    assert (second.job_id, second.seq) == (first.job_id, first.seq)
    assert not service.process(first, "a")
    assert service.process(second, "b")
    service.finish_ready()
    assert service.progress(job.id, "lwtest02").job.rows_done == 10
    assert len(list(service.job_dir(job.id).glob("out-*"))) == 1  # the loser removed its file


def test_a_chunk_that_keeps_failing_fails_the_job(service: JobService, tmp_path: Path) -> None:
    job = service.submit_classify("lwtest03", write_csv(tmp_path / "in.csv", 25), "intents")
    KeywordEngine.fail_on = "5"
    drain(JobWorker(service))
    failed = service.progress(job.id, "lwtest03").job
    assert failed.state == "failed"
    assert failed.error is not None
    assert "failed after 2 attempts: internal error (RuntimeError)" in failed.error
    assert "secret" not in failed.error


def test_bad_input_is_refused_before_the_job_exists(service: JobService, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(orjson.dumps({"text": "fine"}) + b"\n" + orjson.dumps({"text": ""}) + b"\n")
    with pytest.raises(DataError, match="empty"):
        service.submit_classify("lwtest04", path, "intents")
    with pytest.raises(DataError, match="no column 'body'"):
        service.submit_classify("lwtest04", write_csv(tmp_path / "in.csv", 3), "intents", text_col="body")
    assert service.for_key("lwtest04") == []


def test_balance_that_cannot_cover_the_job_is_refused(service: JobService, tmp_path: Path) -> None:
    KeyRepository(service.repo.db).add("lwtest05", "0" * 64, "k", ["classify"], credits=5)
    with pytest.raises(InsufficientBalance):
        service.submit_classify("lwtest05", write_csv(tmp_path / "in.csv", 10), "intents")


def test_jobs_are_private_and_cancel_stops_them(service: JobService, tmp_path: Path) -> None:
    job = service.submit_classify("lwtest06", write_csv(tmp_path / "in.csv", 30), "intents")
    with pytest.raises(NotFound):
        service.progress(job.id, "lwother1")
    assert service.cancel(job.id, "lwtest06").job.state == "cancelled"
    assert service.repo.claim("w", 30.0, 3) is None


class Killed(BaseException):
    """The worker dying: not an `Exception`, so nothing records a failed attempt."""


def kill(_chunk: ClaimedChunk) -> None:
    raise Killed


def test_training_job_retried_after_a_crash_past_publish_publishes_once(service: JobService, tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(30):
            writer.writerow([f"{WORDS[i % 3]} {i}", ["card", "topup", "password"][i % 3]])
    request = TrainRequest(name="trained", train=train, engine=KeywordEngine.name)
    job = service.submit_train("lwtest07", train, request)
    first = service.repo.claim("a", lease_seconds=-1.0, max_attempts=5)  # expires at once: "a" is about to die
    assert first is not None
    with pytest.raises(Killed):
        service.process(first, "a", after_write=kill)  # published, then died before marking the job done
    [published] = service.store.versions("trained")
    assert published.data["job"] == job.id
    assert service.progress(job.id, "lwtest07").job.state == "running"

    retry = service.repo.claim("b", lease_seconds=30.0, max_attempts=5)
    assert retry is not None
    assert (retry.job_id, retry.attempts) == (job.id, 2)
    assert service.process(retry, "b")
    service.finish_ready()
    done = service.progress(job.id, "lwtest07").job
    assert done.state == "succeeded"
    assert done.result is not None
    assert [v.version for v in service.store.versions("trained")] == [published.version] == [done.result["version"]]


def test_idempotency_reserve_store_replay_and_expiry(database: Database) -> None:
    repo = IdempotencyRepository(database, keep=timedelta(hours=24))
    assert repo.reserve("lwk", "abc", "h1") is None
    pending = repo.reserve("lwk", "abc", "h1")
    assert pending is not None
    assert pending.status is None
    repo.store("lwk", "abc", 202, {"id": "job_1"})
    done = repo.reserve("lwk", "abc", "h1")
    assert done is not None
    assert (done.status, done.response) == (202, {"id": "job_1"})
    assert repo.reserve("lwother", "abc", "h2") is None  # scoped to the API key
    expired = IdempotencyRepository(database, keep=timedelta(seconds=-1))
    assert expired.reserve("lwk", "abc", "h3") is None
