"""Jobs service and worker, in process, on SQLite and PostgreSQL: chunking, leases, exactly-once, billing."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from numpy.typing import NDArray
from tests.api.serving_fakes import KeywordEngine, reset_keyword_engine, trained

from labelwise.errors import DataError, InsufficientBalance, InvalidRequest, NotFound
from labelwise.registry.store import ModelStore
from labelwise.services.credits import PriceList
from labelwise.services.job_worker import JobWorker
from labelwise.services.jobs import JobConfig, JobService
from labelwise.services.training import TrainRequest
from labelwise.storage.db import Database
from labelwise.storage.jobs_repository import ClaimedChunk, IdempotencyRepository, JobRepository
from labelwise.storage.repositories import KeyRepository, ModelRepository, UsageRepository

WORDS = ["my card has not arrived", "top up with bank transfer", "reset the password please"]


class FakeEncoder:
    """Vectors that say which text they belong to: the text's length, then its first characters' code points.
    `fail_on` makes a batch holding that text raise, like a crashing encoder."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail_on: str | None = None

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        if self.fail_on is not None and any(self.fail_on in text for text in texts):
            raise RuntimeError("the encoder broke on a secret text")
        return np.asarray([fake_vector(text) for text in texts], dtype=np.float32)


def fake_vector(text: str) -> list[float]:
    return [len(text) + 0.1, *(ord(c) / 3 for c in text[:3].ljust(3))]


@pytest.fixture
def service(database: Database, tmp_path: Path) -> JobService:
    reset_keyword_engine()
    store = ModelStore(tmp_path / "models", ModelRepository(database))
    store.publish("intents", trained(), metrics={}, data={})
    return JobService(
        JobRepository(database),
        KeyRepository(database),
        store,
        PriceList({KeywordEngine.name: 2, "embedding": 3}),
        JobConfig(root=tmp_path / "jobs", chunk_rows=10, lease_seconds=30.0, max_attempts=2),
        encoder=FakeEncoder(),
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


def test_embed_job_writes_float32_vectors_to_parquet_in_input_order_billed_once(
    service: JobService, tmp_path: Path
) -> None:
    KeyRepository(service.repo.db).add("lwemb001", "0" * 64, "k", ["classify"], credits=1000)
    job = service.submit("embed", "lwemb001", write_csv(tmp_path / "in.csv", 95))
    assert (job.kind, job.rows_total, job.chunks_total, job.params["model"]) == ("embed", 95, 10, "all-MiniLM-L6-v2")
    drain(JobWorker(service))
    done = service.progress(job.id, "lwemb001").job
    assert (done.state, done.rows_done, done.credits) == ("succeeded", 95, 95 * 3)
    path = service.results_path(job.id, "lwemb001")
    assert path.suffix == ".parquet"
    table = pq.read_table(path)
    assert table.column_names == ["id", "text", "embedding"]
    assert table.schema.field("embedding").type.value_type == pa.float32()
    rows = table.to_pylist()
    assert [int(row["id"]) for row in rows] == list(range(95))
    for row in rows:  # exactly the encoder's float32 values, through the chunk files and back
        assert np.array_equal(np.asarray(row["embedding"], dtype=np.float32), np.float32(fake_vector(row["text"])))
    assert KeyRepository(service.repo.db).by_prefix("lwemb001").credits == 1000 - 95 * 3  # type: ignore[union-attr]
    today = datetime.now(UTC).date()
    usage = UsageRepository(service.repo.db).query(today, today, "lwemb001")
    assert [(u.route, u.texts, u.credits) for u in usage] == [("/v1/jobs", 95, 285)]


def test_embed_job_killed_between_chunk_file_and_commit_counts_each_row_once(
    service: JobService, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": f"{WORDS[i % 3]} {i}", "embedding": i}) + b"\n" for i in range(20)))
    job = service.submit("embed", "lwemb002", path, model="labelwise-embed")
    first = service.repo.claim("a", lease_seconds=-1.0, max_attempts=5)
    assert first is not None
    with pytest.raises(Killed):
        service.process(first, "a", after_write=kill)  # its chunk file is written, the commit never runs
    drain(JobWorker(service))
    done = service.progress(job.id, "lwemb002").job
    assert (done.state, done.rows_done, done.credits) == ("succeeded", 20, 60)
    assert len(list(service.job_dir(job.id).glob("out-*"))) == 3  # the dead attempt's file is there, and ignored
    rows = pq.read_table(service.results_path(job.id, "lwemb002")).to_pylist()
    assert [row["embedding"] for row in rows] == list(range(20))  # the input's own column is kept
    assert [len(row["embedding_vector"]) for row in rows] == [4] * 20  # the vectors take another name


def test_embed_job_fields_are_checked_before_it_exists(service: JobService, tmp_path: Path) -> None:
    upload = write_csv(tmp_path / "in.csv", 3)
    with pytest.raises(InvalidRequest, match="top_k: only classify jobs") as top_k:
        service.submit("embed", "lwemb003", upload, top_k=3)
    assert top_k.value.param == "top_k"
    with pytest.raises(InvalidRequest, match="model: unknown embedding model 'intents'"):
        service.submit("embed", "lwemb003", upload, model="intents")
    with pytest.raises(InvalidRequest, match="model: a classify job needs one"):
        service.submit("classify", "lwemb003", upload)
    with pytest.raises(InvalidRequest, match="kind: 'tag'"):
        service.submit("tag", "lwemb003", upload)
    KeyRepository(service.repo.db).add("lwemb004", "0" * 64, "k", ["classify"], credits=8)
    with pytest.raises(InsufficientBalance, match="costs 9"):
        service.submit("embed", "lwemb004", upload)  # 3 rows at 3 credits
    assert service.for_key("lwemb003") == service.for_key("lwemb004") == []


def test_embed_job_whose_rows_cannot_share_a_parquet_schema_is_refused(service: JobService, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    rows = [{"text": f"text {i}", "n": i} for i in range(5)] + [{"text": "text 5", "n": "five"}]
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    with pytest.raises(DataError, match=r"file: mixed.jsonl cannot be written as Parquet results: a column") as exc:
        service.submit("embed", "lwemb005", path)
    assert exc.value.param == "file"
    assert service.for_key("lwemb005") == []
    assert list(service.config.root.iterdir()) == []  # nothing of the refused job is left behind


def test_embed_chunk_that_keeps_failing_fails_the_job_without_the_text(service: JobService, tmp_path: Path) -> None:
    job = service.submit("embed", "lwemb006", write_csv(tmp_path / "in.csv", 25))
    assert isinstance(service.encoder, FakeEncoder)
    service.encoder.fail_on = " 15"
    drain(JobWorker(service))
    failed = service.progress(job.id, "lwemb006").job
    assert failed.state == "failed"
    assert failed.error is not None
    assert "failed after 2 attempts: internal error (RuntimeError)" in failed.error
    assert "secret" not in failed.error
    assert failed.credits == 10 * 3  # chunk 0, done before chunk 1 failed twice; chunk 2 never started
