"""`/v1/jobs` and `POST /v1/models` through the app (embedded worker), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelwise.api.schemas.jobs import JobList, JobPublic
from labelwise.config import Settings
from labelwise.services.idempotency import body_hash
from labelwise.services.keys import split_key
from labelwise.storage.repositories import KeyRepository
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio

TEXTS = ["my card has not arrived", "top up with bank transfer", "reset the password please"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path / "data", database_url, job_chunk_rows=7, worker_poll_seconds=0.02, max_body_bytes=4096
    )


@pytest.fixture
async def app(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    fx.publish("intents")
    async with started(settings) as item:
        yield item


def csv_bytes(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text"])
    for i in range(rows):
        writer.writerow([i, TEXTS[i % 3]])
    return out.getvalue().encode()


async def wait_state(app: Running, job_id: str, headers: dict[str, str], timeout: float = 20.0) -> JobPublic:
    deadline = time.monotonic() + timeout
    while True:
        job = JobPublic.model_validate((await app.client.get(f"/v1/jobs/{job_id}", headers=headers)).json())
        if job.state not in ("queued", "running"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job.state} after {timeout} s")
        await asyncio.sleep(0.02)


async def test_submit_follow_and_fetch_results_larger_than_the_body_limit(app: Running, fx: Fixture) -> None:
    headers = {"x-api-key": fx.key("classify")}
    body = csv_bytes(400)
    assert len(body) > 4096  # over max_body_bytes: the upload route has its own limit
    response = await app.client.post(
        "/v1/jobs", headers=headers, files={"file": ("in.csv", body, "text/csv")}, data={"model": "intents"}
    )
    assert response.status_code == 202, response.text
    job = JobPublic.model_validate(response.json())
    assert response.headers["location"] == f"/v1/jobs/{job.id}"
    assert (job.rows_total, job.chunks_total) == (400, 58)
    done = await wait_state(app, job.id, headers)
    assert (done.state, done.rows_done, done.credits) == ("succeeded", 400, 400)
    assert done.rate is not None
    results = await app.client.get(f"/v1/jobs/{job.id}/results", headers=headers)
    assert results.status_code == 200
    rows = list(csv.DictReader(io.StringIO(results.text)))
    assert [int(r["id"]) for r in rows] == list(range(400))
    assert [r["label"] for r in rows[:3]] == ["card", "topup", "password"]
    listed = JobList.model_validate((await app.client.get("/v1/jobs", headers=headers)).json())
    assert [j.id for j in listed.data] == [job.id]


async def test_parquet_in_parquet_out(app: Running, fx: Fixture, tmp_path: Path) -> None:
    headers = {"x-api-key": fx.key("classify")}
    buffer = io.BytesIO()
    pq.write_table(pa.table({"text": TEXTS * 5, "n": list(range(15))}), buffer)
    response = await app.client.post(
        "/v1/jobs", headers=headers, files={"file": ("in.parquet", buffer.getvalue())}, data={"model": "intents"}
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert (await wait_state(app, job_id, headers)).state == "succeeded"
    results = await app.client.get(f"/v1/jobs/{job_id}/results", headers=headers)
    table = pq.read_table(io.BytesIO(results.content))
    assert table.column("n").to_pylist() == list(range(15))
    assert table.column("label").to_pylist()[:3] == ["card", "topup", "password"]


async def test_bad_uploads_are_refused_before_a_job_exists(app: Running, fx: Fixture) -> None:
    headers = {"x-api-key": fx.key("classify")}
    missing = await app.client.post(
        "/v1/jobs",
        headers=headers,
        files={"file": ("in.csv", csv_bytes(3))},
        data={"model": "intents", "text_col": "x"},
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "text_col"
    unknown = await app.client.post(
        "/v1/jobs", headers=headers, files={"file": ("in.txt", b"hello")}, data={"model": "intents"}
    )
    assert unknown.status_code == 400
    no_model = await app.client.post(
        "/v1/jobs", headers=headers, files={"file": ("in.csv", csv_bytes(3))}, data={"model": "nope"}
    )
    assert no_model.status_code == 404
    assert (await app.client.get("/v1/jobs", headers=headers)).json()["data"] == []


async def test_other_keys_never_see_a_job_and_scopes_are_checked(app: Running, fx: Fixture) -> None:
    owner = {"x-api-key": fx.key("classify")}
    other = {"x-api-key": fx.key("classify")}
    response = await app.client.post(
        "/v1/jobs", headers=owner, files={"file": ("in.csv", csv_bytes(5))}, data={"model": "intents"}
    )
    job_id = response.json()["id"]
    for method, path in (("GET", ""), ("GET", "/results"), ("DELETE", "")):
        assert (await app.client.request(method, f"/v1/jobs/{job_id}{path}", headers=other)).status_code == 404
    assert (await app.client.get("/v1/jobs", headers=other)).json()["data"] == []
    train_only = {"x-api-key": fx.key("train")}
    refused = await app.client.post(
        "/v1/jobs", headers=train_only, files={"file": ("in.csv", csv_bytes(5))}, data={"model": "intents"}
    )
    assert refused.status_code == 403
    not_train = await app.client.post(
        "/v1/models", headers=owner, files={"file": ("in.csv", csv_bytes(5))}, data={"name": "x"}
    )
    assert not_train.status_code == 403
    assert (await app.client.get("/v1/models", headers=owner)).status_code == 200  # reading models stays classify


async def test_cancel(app: Running, fx: Fixture) -> None:
    headers = {"x-api-key": fx.key("classify")}
    app.app.container.job_worker.stop()  # nothing runs: the job stays queued until cancelled
    response = await app.client.post(
        "/v1/jobs", headers=headers, files={"file": ("in.csv", csv_bytes(20))}, data={"model": "intents"}
    )
    job_id = response.json()["id"]
    cancelled = await app.client.delete(f"/v1/jobs/{job_id}", headers=headers)
    assert cancelled.json()["state"] == "cancelled"
    assert (await app.client.get(f"/v1/jobs/{job_id}/results", headers=headers)).status_code == 400


async def test_idempotency_key_replays_refuses_other_bodies_and_is_per_key(app: Running, fx: Fixture) -> None:
    key = fx.key("classify")
    headers = {"x-api-key": key, "Idempotency-Key": "abc-1"}
    files = {"file": ("in.csv", csv_bytes(10))}
    first = await app.client.post("/v1/jobs", headers=headers, files=files, data={"model": "intents"})
    again = await app.client.post("/v1/jobs", headers=headers, files=files, data={"model": "intents"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    other_body = await app.client.post(
        "/v1/jobs", headers=headers, files={"file": ("in.csv", csv_bytes(11))}, data={"model": "intents"}
    )
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    listed = (await app.client.get("/v1/jobs", headers={"x-api-key": key})).json()["data"]
    assert len(listed) == 1
    second_key = {"x-api-key": fx.key("classify"), "Idempotency-Key": "abc-1"}
    own = await app.client.post("/v1/jobs", headers=second_key, files=files, data={"model": "intents"})
    assert own.json()["id"] != first.json()["id"]


async def test_concurrent_duplicate_is_409(app: Running, fx: Fixture) -> None:
    key = fx.key("classify")
    body = csv_bytes(3)
    fields = {"kind": "classify", "file": hashlib.sha256(body).hexdigest(), "model": "intents", "text_col": "text"}
    # As if the first request with this key and body were still running.
    app.app.container.idempotency.repo.reserve(split_key(key), "busy", body_hash({**fields, "top_k": 1}))
    response = await app.client.post(
        "/v1/jobs",
        headers={"x-api-key": key, "Idempotency-Key": "busy"},
        files={"file": ("in.csv", body)},
        data={"model": "intents"},
    )
    assert response.status_code == 409
    assert (await app.client.get("/v1/jobs", headers={"x-api-key": key})).json()["data"] == []


async def test_train_through_the_api_publishes_a_version(app: Running, fx: Fixture, settings: Settings) -> None:
    headers = {"x-api-key": fx.key("train", "classify"), "Idempotency-Key": "train-1"}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["text", "label"])
    for i in range(30):
        writer.writerow([f"{TEXTS[i % 3]} {i}", ["card", "topup", "password"][i % 3]])
    files = {"file": ("train.csv", out.getvalue().encode())}
    data = {"name": "trained", "engine": "serving_keyword", "params": '{"boost": 3.0}'}
    response = await app.client.post("/v1/models", headers=headers, files=files, data=data)
    assert response.status_code == 202, response.text
    done = await wait_state(app, response.json()["id"], headers)
    assert done.state == "succeeded", done.error
    assert done.result is not None
    assert done.result["model"] == "trained"
    assert [v.version for v in fx.models.versions("trained")] == [done.result["version"]]
    replay = await app.client.post("/v1/models", headers=headers, files=files, data=data)
    assert replay.json()["id"] == done.id


async def test_training_with_an_unknown_engine_or_hyperparameter_is_refused_before_a_job_exists(
    app: Running, fx: Fixture
) -> None:
    headers = {"x-api-key": fx.key("train", "classify")}
    files = {"file": ("train.csv", b"text,label\nmy card,card\nmy pin,pin\n")}
    typo = {"name": "trained", "engine": "serving_keyword", "params": '{"bost": 3.0}'}
    refused = await app.client.post("/v1/models", headers=headers, files=files, data=typo)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "params.bost"
    assert "boost" in error["message"]  # the names it does take
    unknown = {"name": "trained", "engine": "no-such-engine"}
    refused = await app.client.post("/v1/models", headers=headers, files=files, data=unknown)
    assert (refused.status_code, refused.json()["error"]["param"]) == (400, "engine")
    assert (await app.client.get("/v1/jobs", headers=headers)).json()["data"] == []


async def test_upload_over_the_upload_limit_is_413_and_short_balance_is_402(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path / "small", database_url, max_body_bytes=1024, max_upload_bytes=2048, worker_poll_seconds=0.02
    )
    small = Fixture(settings)
    small.publish("intents")
    key = small.key("classify")
    prefix = split_key(key)
    assert prefix is not None
    KeyRepository(small.db).update(prefix, {"credits": 5})
    try:
        async with started(settings) as app:
            headers = {"x-api-key": key}
            too_big = await app.client.post(
                "/v1/jobs", headers=headers, files={"file": ("in.csv", csv_bytes(200))}, data={"model": "intents"}
            )
            assert too_big.status_code == 413
            short = await app.client.post(
                "/v1/jobs", headers=headers, files={"file": ("in.csv", csv_bytes(10))}, data={"model": "intents"}
            )
            assert short.status_code == 402
            assert short.json()["error"]["code"] == "INSUFFICIENT_BALANCE"
            assert (await app.client.get("/v1/jobs", headers=headers)).json()["data"] == []
    finally:
        small.close()
