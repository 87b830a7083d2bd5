"""`GET /v1/models/{name}/drift`: near zero on traffic like the validation data, large on another dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelwise.api.schemas.monitoring import DriftResponse
from labelwise.config import Settings
from tests.api.monitoring_fakes import read_jsonl, trec_model
from tests.api.serving_fakes import Fixture, Running, started

pytestmark = pytest.mark.anyio


async def _send(running: Running, model: str, texts: list[str], headers: dict[str, str]) -> None:
    for start in range(0, len(texts), 100):
        body = {"texts": texts[start : start + 100], "model": model}
        r = await running.client.post("/v1/batch", json=body, headers=headers)
        assert r.status_code == 200, r.text


async def _drift(running: Running, model: str, headers: dict[str, str], window: str = "1h") -> DriftResponse:
    r = await running.client.get(f"/v1/models/{model}/drift", params={"window": window}, headers=headers)
    assert r.status_code == 200, r.text
    return DriftResponse.model_validate(r.json())


async def test_drift_is_small_on_like_traffic_and_large_on_other_traffic(
    settings: Settings, fx: Fixture, auth: dict[str, str], shared_data: Path
) -> None:
    # One model, published twice under two names: one gets questions like its validation data, one movie reviews.
    engine, metrics = trec_model(shared_data)
    fx.store.publish("calm", engine, metrics=metrics, data={})
    fx.store.publish("moved", engine, metrics=metrics, data={})
    admin = {"x-api-key": fx.key("admin")}
    like = [r["text"] for r in read_jsonl(shared_data / "trec" / "train.jsonl", 3000)[1800:]]
    other = [r["text"] for r in read_jsonl(shared_data / "sst2" / "test.jsonl", 1200)]
    settings = settings.model_copy(update={"prediction_log_max_per_second": 0})  # every text counts here
    async with started(settings) as running:
        empty = await _drift(running, "calm", auth)
        assert (empty.predictions, empty.psi, empty.status) == (0, None, "no_data")

        await _send(running, "calm", like, auth)
        await _send(running, "moved", other, auth)
        calm = await _drift(running, "calm", auth)
        moved = await _drift(running, "moved", auth)

        assert calm.predictions == len(like)
        assert calm.psi is not None
        assert calm.psi < 0.1, calm
        assert calm.status == "stable"
        assert calm.mean_confidence is not None
        assert calm.baseline_mean_confidence is not None
        assert abs(calm.mean_confidence - calm.baseline_mean_confidence) < 0.1

        assert moved.predictions == len(other)
        assert moved.psi is not None
        assert moved.psi > 0.25, moved
        assert moved.status == "large"
        assert moved.low_confidence_share is not None
        assert calm.low_confidence_share is not None
        assert moved.low_confidence_share > calm.low_confidence_share

        # The gauge an alert reads.
        text = (await running.client.get("/metrics", headers=admin)).text
        psi = {
            s.labels["model"]: s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "labelwise_drift_psi"
        }
        assert psi == {"calm": pytest.approx(calm.psi), "moved": pytest.approx(moved.psi)}


async def test_drift_errors(running: Running, auth: dict[str, str]) -> None:
    bad = await running.client.get("/v1/models/intents/drift", params={"window": "soon"}, headers=auth)
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "window"
    missing = await running.client.get("/v1/models/nope/drift", headers=auth)
    assert missing.status_code == 404
    # A model published without a report or baseline: drift is unknown, not an error.
    r = await running.client.get("/v1/models/intents/drift", headers=auth)
    assert r.status_code == 200
    assert r.json()["psi"] is None
