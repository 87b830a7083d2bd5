"""The prediction log, `POST /v1/feedback` and the review queue `GET /v1/review`."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.api.schemas.monitoring import FeedbackPublic, ReviewResponse
from labelwise.storage.db import Database
from labelwise.storage.monitoring import FeedbackRepository, PredictionLogRepository
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio


async def test_logged_prediction_has_hash_and_length_but_no_text_by_default(
    running: Running, fx: Fixture, auth: dict[str, str]
) -> None:
    r = await running.client.post("/v1/classify", json={"text": "my card is late"}, headers=auth)
    request_id = r.json()["request_id"]
    await running.app.container.monitoring.log.flush()
    [row] = PredictionLogRepository(fx.db).by_request(request_id)
    assert (row.model, row.version, row.text_chars, row.predicted) == ("intents", "1.0.0", 15, ["card"])
    assert len(row.text_sha256) == 64
    assert row.raw_text is None
    assert row.key_prefix is not None
    assert row.key_prefix in auth["x-api-key"]
    admin = {"x-api-key": fx.key("admin")}
    queue = ReviewResponse.model_validate((await running.client.get("/v1/review", headers=admin)).json())
    assert queue.items == []  # only predictions with their raw text can be reviewed
    f = await running.client.post("/v1/feedback", json={"request_id": request_id, "labels": ["topup"]}, headers=auth)
    assert f.status_code == 201, f.text
    assert FeedbackPublic.model_validate(f.json()).text_known is False


async def test_feedback_and_review_with_raw_text(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "raw", database_url, log_raw_text=True)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        key = {"x-api-key": fixture.key("classify")}
        admin = {"x-api-key": fixture.key("admin")}
        async with started(settings) as running:
            client = running.client
            sure = await client.post("/v1/classify", json={"text": "my card card card is late"}, headers=key)
            unsure = await client.post("/v1/classify", json={"text": "hello there"}, headers=key)
            r = await client.get("/v1/review", params={"model": "intents"}, headers=admin)
            assert r.status_code == 200, r.text
            items = ReviewResponse.model_validate(r.json()).items
            assert [i.request_id for i in items] == [unsure.json()["request_id"], sure.json()["request_id"]]
            assert items[0].text == "hello there"
            assert items[0].confidence <= items[1].confidence
            assert (await client.get("/v1/review", headers=key)).status_code == 403

            body = {"request_id": unsure.json()["request_id"], "labels": ["password"]}
            f = await client.post("/v1/feedback", json=body, headers=key)
            assert f.status_code == 201, f.text
            stored = FeedbackPublic.model_validate(f.json())
            assert (stored.model, stored.labels, stored.text_known) == ("intents", ["password"], True)
            by_text = {"text": "new words", "labels": ["card"], "model": "intents"}
            assert (await client.post("/v1/feedback", json=by_text, headers=key)).status_code == 201
            missing = {"request_id": "req_nope", "labels": ["card"]}
            assert (await client.post("/v1/feedback", json=missing, headers=key)).status_code == 404
            both = {"request_id": "req_nope", "text": "x", "labels": ["card"]}
            assert (await client.post("/v1/feedback", json=both, headers=key)).status_code == 400
        entries = FeedbackRepository(fixture.db).for_model("intents")
        assert [(e.raw_text, e.labels) for e in entries] == [("hello there", ["password"]), ("new words", ["card"])]
    finally:
        fixture.close()


async def test_raw_text_is_forgotten_after_retention(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "ret", database_url, log_raw_text=True)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        key = {"x-api-key": fixture.key("classify")}
        async with started(settings) as running:
            r = await running.client.post("/v1/classify", json={"text": "my card is late"}, headers=key)
            log = running.app.container.monitoring.log
            await log.flush()
            assert await log.cleanup() == 0  # still within retention
            log.retention = log.retention * 0  # every stored text is now past it
            assert await log.cleanup() == 1
        [row] = PredictionLogRepository(Database(settings.resolved_database_url())).by_request(r.json()["request_id"])
        assert row.raw_text is None
        assert len(row.text_sha256) == 64
    finally:
        fixture.close()


async def test_sampling_logs_a_share_of_requests(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "sample", database_url, prediction_log_sample=0.0)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        key = {"x-api-key": fixture.key("classify")}
        async with started(settings) as running:
            await running.client.post("/v1/classify", json={"text": "my card is late"}, headers=key)
            await running.app.container.monitoring.log.flush()
        assert PredictionLogRepository(fixture.db).count() == 0
    finally:
        fixture.close()
