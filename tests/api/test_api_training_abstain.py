"""`POST /v1/models` with `target_precision`: the version's abstain rule is tuned for it in the embedded worker,
and a target outside (0, 1) is refused by name before a job exists."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, Running, make_settings, started
from tests.api.test_api_training_conflicts import finished

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, worker_poll_seconds=0.05)


@pytest.fixture
async def app(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    async with started(settings) as item:
        yield item


async def test_the_target_precision_tunes_the_versions_rule(app: Running, fx: Fixture, shared_data: Path) -> None:
    headers = {"x-api-key": fx.key("train", "classify")}
    files = {"file": ("trec.jsonl", (shared_data / "trec" / "test.jsonl").read_bytes())}
    data = {"name": "questions", "target_precision": "0.9"}
    response = await app.client.post("/v1/models", headers=headers, files=files, data=data)
    assert response.status_code == 202, response.text
    job = await finished(app, response.json()["id"], headers)
    assert job.state == "succeeded", job.error
    detail = await _published(app, "questions", headers)
    rule = detail["versions"][0]["metrics"]["abstain"]
    assert rule["target_precision"] == 0.9
    assert 0.0 <= rule["min_confidence"] <= 1.0


async def _published(app: Running, name: str, headers: dict[str, str], timeout: float = 30.0) -> dict[str, Any]:
    """The model's details once the server has seen the version the job published (its model poll runs every
    few seconds, so right after the job it may not know the model yet)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await app.client.get(f"/v1/models/{name}", headers=headers)
        if found.status_code == 200:
            detail: dict[str, Any] = found.json()
            return detail
        assert found.status_code == 404, found.text
        assert time.monotonic() < deadline, f"{name} not served {timeout} s after its job succeeded"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "nan", "high"])
async def test_a_target_outside_zero_one_is_refused_by_name(
    app: Running, fx: Fixture, shared_data: Path, value: str
) -> None:
    headers = {"x-api-key": fx.key("train", "classify")}
    files = {"file": ("trec.jsonl", (shared_data / "trec" / "test.jsonl").read_bytes())}
    response = await app.client.post(
        "/v1/models", headers=headers, files=files, data={"name": "questions", "target_precision": value}
    )
    assert response.status_code == 400, response.text
    error = ErrorResponse.model_validate(response.json()).error
    assert error.param == "target_precision"
    assert "target_precision" in error.message
    assert (await app.client.get("/v1/jobs", headers=headers)).json()["data"] == []
