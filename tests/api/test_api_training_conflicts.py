"""`POST /v1/models` with `on_conflict`, on public data whose texts repeat with different labels (emotion and
goemotions from LABELWISE_SHARED_DATA), trained by the real linear engine in the embedded worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from labelwise.api.schemas.errors import ErrorResponse
from labelwise.api.schemas.jobs import JobPublic
from labelwise.api.schemas.reports import TrainingReport
from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, worker_poll_seconds=0.05)


@pytest.fixture
async def app(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    async with started(settings) as item:
        yield item


async def finished(app: Running, job_id: str, headers: dict[str, str], timeout: float = 120.0) -> JobPublic:
    deadline = time.monotonic() + timeout
    while True:
        job = JobPublic.model_validate((await app.client.get(f"/v1/jobs/{job_id}", headers=headers)).json())
        if job.state not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"job still {job.state} after {timeout} s"
        await asyncio.sleep(0.1)


async def test_training_resolves_conflicts_by_majority_and_reports_them(
    app: Running, fx: Fixture, shared_data: Path
) -> None:
    headers = {"x-api-key": fx.key("train", "classify")}
    files = {"file": ("dev.jsonl", (shared_data / "emotion" / "dev.jsonl").read_bytes())}
    response = await app.client.post("/v1/models", headers=headers, files=files, data={"name": "emotion"})
    assert response.status_code == 202, response.text
    job = await finished(app, response.json()["id"], headers)
    assert job.state == "succeeded", job.error
    assert job.result is not None
    report = TrainingReport.model_validate((await app.client.get(job.result["report"], headers=headers)).json())
    stats = (report.model_extra or {})["data"]["stats"]["train"]
    # Two tweets of emotion's dev split carry two different labels, one row each: exact ties, dropped.
    assert (stats["conflicts_resolved"], stats["conflicts_dropped"], stats["conflicting_rows_dropped"]) == (0, 2, 4)


async def test_on_conflict_error_refuses_the_file_and_names_the_field(
    app: Running, fx: Fixture, shared_data: Path
) -> None:
    headers = {"x-api-key": fx.key("train", "classify")}
    files = {"file": ("train.jsonl", (shared_data / "goemotions" / "train.jsonl").read_bytes())}
    data = {"name": "goemotions", "on_conflict": "error"}
    response = await app.client.post("/v1/models", headers=headers, files=files, data=data)
    assert response.status_code == 400, response.text
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == "invalid_data"
    assert "62 texts have conflicting labels and on_conflict (--on-conflict) is 'error'" in error.message
    assert (await app.client.get("/v1/jobs", headers=headers)).json()["data"] == []

    data["on_conflict"] = "keep"
    response = await app.client.post("/v1/models", headers=headers, files=files, data=data)
    assert response.status_code == 400
    assert ErrorResponse.model_validate(response.json()).error.param == "on_conflict"
