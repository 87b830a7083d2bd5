"""`GET /metrics`: who may read it, and that requests, predictions and rejections are counted exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition text by (name, sorted labels)."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(all_samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return all_samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(running: Running, headers: dict[str, str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await running.client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_metrics_need_the_admin_scope(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    assert (await running.client.get("/metrics")).status_code == 401
    assert (await running.client.get("/metrics", headers=auth)).status_code == 403
    admin = {"x-api-key": fx.key("admin")}
    assert (await running.client.get("/metrics", headers=admin)).status_code == 200


async def test_metrics_can_be_public(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "public", database_url, metrics_public=True)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        async with started(settings) as running:
            r = await running.client.get("/metrics")
            assert r.status_code == 200
            assert "labelwise_requests_total" in r.text
    finally:
        fixture.close()


async def test_requests_and_predictions_are_counted(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    admin = {"x-api-key": fx.key("admin")}
    before = await scrape(running, admin)
    for _ in range(3):
        r = await running.client.post("/v1/classify", json={"text": "my card is late"}, headers=auth)
        assert r.status_code == 200
    r = await running.client.post("/v1/batch", json={"texts": ["top up please", "reset password"]}, headers=auth)
    assert r.status_code == 200
    assert (await running.client.post("/v1/classify", json={"text": ""}, headers=auth)).status_code == 400
    after = await scrape(running, admin)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"status": "200", "model": "intents", "version": "1.0.0"}
    assert delta("labelwise_requests_total", route="/v1/classify", **ok) == 3
    assert delta("labelwise_requests_total", route="/v1/batch", **ok) == 1
    assert delta("labelwise_requests_total", route="/v1/classify", status="400", model="", version="") == 1
    assert delta("labelwise_predictions_total", model="intents", label="card") == 3
    assert delta("labelwise_predictions_total", model="intents", label="topup") == 1
    assert delta("labelwise_predictions_total", model="intents", label="password") == 1
    assert delta("labelwise_confidence_count", model="intents") == 5
    assert delta("labelwise_request_texts_sum", model="intents") == 5
    assert delta("labelwise_queue_ms_count", model="intents") == 4
    # The same text three times: the second and third are answered from the cache.
    assert delta("labelwise_cache_hits_total") >= 2


async def test_rejections_are_counted(tmp_path: Path, database_url: str) -> None:
    # Public metrics: an admin key would be rate limited too.
    settings = make_settings(tmp_path / "limited", database_url, default_rate_limit="1/minute", metrics_public=True)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        key = {"x-api-key": fixture.key("classify")}
        admin: dict[str, str] = {}
        async with started(settings) as running:
            before = await scrape(running, admin)
            statuses = [
                (await running.client.post("/v1/classify", json={"text": "card"}, headers=key)).status_code
                for _ in range(3)
            ]
            after = await scrape(running, admin)
        assert statuses.count(429) == 2
        limited = value(after, "labelwise_rejections_total", reason="rate_limit")
        assert limited - value(before, "labelwise_rejections_total", reason="rate_limit") == 2
    finally:
        fixture.close()


def test_job_progress_is_exposed(settings: Settings) -> None:
    from labelwise.monitoring.metrics import clear_job_progress, render, set_job_progress

    set_job_progress("job_1", "predict", 0.25)
    assert value(samples(render().decode()), "labelwise_job_progress", job="job_1", kind="predict") == 0.25
    clear_job_progress("job_1", "predict")
    assert ("labelwise_job_progress", (("job", "job_1"), ("kind", "predict"))) not in samples(render().decode())
