"""Embedding jobs through a real `labelwise serve` (its default worker count, each with its embedded job worker),
killed with SIGKILL mid-job and started again: every row's vector once, in input order, billed once.

The classify-job crash test (`test_jobs_crash.py`) kills `labelwise worker` processes; this one kills the whole
server, parent and workers at once, while both workers hold chunks, and finishes the job with a fresh server on
the same data directory and database (SQLite and PostgreSQL).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import encoder_cache_dir
from tests.integration.real_server import RunningServer, kill_serve, labelwise_serve, start_serve
from tests.integration.test_jobs_crash import wait_until, write_rows

from labelwise.api.schemas.jobs import JobPublic
from labelwise.bootstrap import Container
from labelwise.config import Settings
from labelwise.services.keys import KeyChanges
from labelwise.storage.repositories import KeyRepository, UsageRepository

ROWS = 1_000
CREDITS = 1_000_000
PRICE = 5  # the default price of an embedded text (`credit_prices["embedding"]`)


class Site:
    """A data directory and database with a funded key, and the environment of the servers that share them."""

    def __init__(self, tmp_path: Path, database_url: str) -> None:
        settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
        self.container = Container(settings, open_migrates=True)
        self.key, info = self.container.keys.create("embed-jobs", ["classify"], settings=KeyChanges(credits=CREDITS))
        self.prefix = info.prefix
        self.env = {
            "LABELWISE_DATA_DIR": str(settings.data_dir),
            "LABELWISE_DATABASE_URL": database_url,
            "LABELWISE_ENCODER_DIR": str(encoder_cache_dir()),
            "LABELWISE_JOB_CHUNK_ROWS": "50",
            "LABELWISE_JOB_LEASE_SECONDS": "1.0",  # a dead server's chunks are taken over a second later
            "LABELWISE_JOB_MAX_ATTEMPTS": "10",
            "LABELWISE_WORKER_POLL_SECONDS": "0.05",
        }

    def get(self, server: RunningServer, path: str) -> httpx.Response:
        return httpx.get(server.base + path, headers={"x-api-key": self.key}, timeout=60)

    def job(self, server: RunningServer, job_id: str) -> JobPublic:
        response = self.get(server, f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return JobPublic.model_validate(response.json())

    def rows_done(self, job_id: str) -> int:
        """From the database, as a server that is down cannot answer."""
        job = self.container.jobs.repo.get(job_id)
        assert job is not None
        return job.rows_done


@pytest.fixture
def site(tmp_path: Path, database_url: str) -> Iterator[Site]:
    item = Site(tmp_path, database_url)
    yield item
    item.container.db.dispose()


def submit(site: Site, server: RunningServer, upload: Path, **fields: str) -> httpx.Response:
    with upload.open("rb") as fh:
        return httpx.post(
            server.base + "/v1/jobs",
            headers={"x-api-key": site.key},
            files={"file": (upload.name, fh)},
            data={"kind": "embed", **fields},
            timeout=120,
        )


def test_server_killed_mid_embed_job_loses_and_duplicates_nothing(site: Site, tmp_path: Path) -> None:
    upload = write_rows(tmp_path / "texts.csv", ROWS)
    first = start_serve(site.env)
    try:
        response = submit(site, first, upload)
        assert response.status_code == 202, response.text
        job = JobPublic.model_validate(response.json())
        assert (job.kind, job.model, job.rows_total, job.chunks_total) == ("embed", "all-MiniLM-L6-v2", ROWS, 20)
        wait_until(lambda: site.rows_done(job.id) > 0, 180, "first chunks embedded")
    finally:
        kill_serve(first)  # parent and both workers, at once, while they hold chunks
    done_at_kill = site.rows_done(job.id)
    assert 0 < done_at_kill < ROWS, f"the kill came too late to test anything: {done_at_kill} rows done"

    with labelwise_serve(site.env) as second:
        wait_until(lambda: site.job(second, job.id).state not in ("queued", "running"), 300, "job to end")
        finished = site.job(second, job.id)
        assert finished.state == "succeeded", finished.error
        assert (finished.rows_done, finished.credits) == (ROWS, ROWS * PRICE)
        download = site.get(second, f"/v1/jobs/{job.id}/results")
        assert download.status_code == 200, download.text
        assert download.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(io.BytesIO(download.content))
        rows: list[dict[str, Any]] = table.to_pylist()
        sample = [rows[i] for i in (0, 777, ROWS - 1)]
        online = httpx.post(
            second.base + "/v1/embeddings",
            headers={"x-api-key": site.key},
            json={"input": [row["text"] for row in sample], "model": "all-MiniLM-L6-v2"},
            timeout=60,
        )
        assert online.status_code == 200, online.text

    assert table.column_names == ["id", "text", "embedding"]
    assert table.schema.field("embedding").type.value_type == pa.float32()
    assert [int(row["id"]) for row in rows] == list(range(ROWS))  # each row once, in input order
    vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    assert vectors.shape == (ROWS, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    for row, item in zip(sample, online.json()["data"], strict=True):  # the vectors /v1/embeddings returns
        assert float(np.dot(row["embedding"], item["embedding"])) > 0.999

    # Billed once: the chunks a killed worker embedded but never committed were done again, and charged once.
    key = KeyRepository(site.container.db).by_prefix(site.prefix)
    assert key is not None
    assert key.credits == CREDITS - ROWS * PRICE - len(sample) * PRICE  # the job, and the /v1/embeddings check
    today = datetime.now(UTC).date()
    usage = UsageRepository(site.container.db).query(today, today, site.prefix)
    assert [(u.route, u.texts, u.credits) for u in usage if u.route == "/v1/jobs"] == [("/v1/jobs", ROWS, ROWS * PRICE)]
    recorded = {chunk.result_path for chunk in site.container.jobs.repo.chunks(job.id)}
    assert len(recorded) == 20


def test_embed_job_fields_are_checked_by_a_live_server(site: Site, tmp_path: Path) -> None:
    upload = write_rows(tmp_path / "texts.csv", 5)
    with labelwise_serve(site.env) as server:
        cases = {
            "top_k": ({"top_k": "3"}, "invalid_request", "top_k: only classify jobs take top_k"),
            "model": ({"model": "gpt-4o"}, "invalid_request", "model: unknown embedding model 'gpt-4o'"),
            "text_col": ({"text_col": "body"}, "invalid_data", "no column 'body'"),
        }
        for param, (fields, code, message) in cases.items():
            refused = submit(site, server, upload, **fields)
            assert refused.status_code == 400, refused.text
            error = refused.json()["error"]
            assert (error["param"], error["code"]) == (param, code), error
            assert message in error["message"]
        unknown_kind = submit(site, server, upload, kind="tag")
        assert unknown_kind.status_code == 400, unknown_kind.text
        assert unknown_kind.json()["error"]["param"] == "kind"
        classify_without_model = submit(site, server, upload, kind="classify")
        assert classify_without_model.status_code == 400
        assert classify_without_model.json()["error"]["param"] == "model"
        assert site.get(server, "/v1/jobs").json()["data"] == []
