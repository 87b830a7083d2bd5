"""`/v1/classify` and `/v1/batch`: contract, model references, request ids, timing headers, cache, coalescing."""

from __future__ import annotations

import asyncio

import pytest

from labelwise.api.schemas.classify import BatchResponse, ClassifyResponse
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, KeywordEngine, Running, started, trained

pytestmark = pytest.mark.anyio


async def test_classify_returns_ranked_labels_and_decision(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.post("/v1/classify", json={"text": "my card is late", "top_k": 2}, headers=auth)
    assert r.status_code == 200, r.text
    body = ClassifyResponse.model_validate(r.json())
    assert set(r.json()) == set(ClassifyResponse.model_fields)  # the route writes its JSON itself
    assert all(set(s) == {"label", "score"} for s in r.json()["labels"])
    assert r.headers["content-type"] == "application/json"
    assert next(s.label for s in body.labels) == "card"
    assert len(body.labels) == 2
    assert body.labels[0].score >= body.labels[1].score
    assert body.predicted == ["card"]
    assert (body.model, body.model_version, body.top_k) == ("intents", "1.0.0", 2)
    assert body.latency_ms > 0
    assert r.headers["x-request-id"] == body.request_id
    assert float(r.headers["x-inference-time"]) >= 0
    assert float(r.headers["x-queue-time"]) >= 0


async def test_threshold_drops_low_scores_but_not_the_decision(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.post("/v1/classify", json={"text": "zzz", "threshold": 0.9}, headers=auth)
    body = ClassifyResponse.model_validate(r.json())
    assert body.labels == []
    assert len(body.predicted) == 1


async def test_batch_equals_one_by_one(running: Running, auth: dict[str, str]) -> None:
    texts = ["my card is late", "top up please", "password reset", "nothing at all", "card top up"]
    r = await running.client.post("/v1/batch", json={"texts": texts, "top_k": 3}, headers=auth)
    assert r.status_code == 200, r.text
    batch = BatchResponse.model_validate(r.json())
    assert set(r.json()) == set(BatchResponse.model_fields)
    assert all(set(item) == {"index", "labels", "predicted", "abstained"} for item in r.json()["results"])
    assert [item.index for item in batch.results] == list(range(len(texts)))
    for text, item in zip(texts, batch.results, strict=True):
        one = await running.client.post("/v1/classify", json={"text": text, "top_k": 3}, headers=auth)
        single = ClassifyResponse.model_validate(one.json())
        assert single.labels == item.labels
        assert single.predicted == item.predicted


async def test_model_references(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    fx.publish("intents", trained(boost=9.0))  # 1.1.0 becomes production (newest) and latest
    fx.store.set_alias("intents", "canary", "1.0.0")
    await running.manager.refresh()
    cases = {"intents": "1.1.0", "intents@production": "1.1.0", "intents@canary": "1.0.0", "intents:1.0.0": "1.0.0"}
    for ref, version in cases.items():
        r = await running.client.post("/v1/classify", json={"text": "card", "model": ref}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["model_version"] == version, ref


async def test_request_id_is_echoed_when_valid_and_replaced_when_not(running: Running, auth: dict[str, str]) -> None:
    sent = "client-1.2_3"
    r = await running.client.post("/v1/classify", json={"text": "card"}, headers={**auth, "X-Request-Id": sent})
    assert r.headers["x-request-id"] == sent == r.json()["request_id"]
    for bad in ("x" * 65, "has space", "semi;colon"):
        r = await running.client.post("/v1/classify", json={"text": "card"}, headers={**auth, "X-Request-Id": bad})
        assert r.headers["x-request-id"] != bad
        assert r.headers["x-request-id"].startswith("req_")
    errored = await running.client.post("/v1/classify", json={}, headers={**auth, "X-Request-Id": sent})
    assert ErrorResponse.model_validate(errored.json()).error.request_id == sent


async def test_cache_answers_repeated_texts_without_the_engine(running: Running, auth: dict[str, str]) -> None:
    first = await running.client.post("/v1/classify", json={"text": "card arrived?"}, headers=auth)
    calls = len(KeywordEngine.calls)
    again = await running.client.post("/v1/classify", json={"text": "card arrived?", "top_k": 1}, headers=auth)
    assert len(KeywordEngine.calls) == calls
    assert again.json()["labels"][0] == first.json()["labels"][0]
    assert again.headers["x-inference-time"] == "0.0"
    batch = await running.client.post("/v1/batch", json={"texts": ["card arrived?", "fresh text"]}, headers=auth)
    assert batch.status_code == 200
    assert KeywordEngine.calls[-1] == 1  # only the text not seen before went to the engine


async def test_concurrent_requests_are_coalesced(settings: Settings, fx: Fixture) -> None:
    fx.publish("intents")
    key = fx.key()
    async with started(settings.model_copy(update={"cache_size": 0})) as app:
        KeywordEngine.calls.clear()
        KeywordEngine.delay_seconds = 0.02
        texts = [f"card number {i}" for i in range(40)]
        responses = await asyncio.gather(
            *(app.client.post("/v1/classify", json={"text": t}, headers={"x-api-key": key}) for t in texts)
        )
    assert all(r.status_code == 200 for r in responses)
    assert sum(KeywordEngine.calls) == len(texts)
    assert len(KeywordEngine.calls) < len(texts) / 2, KeywordEngine.calls


async def test_default_model_resolution(settings: Settings, fx: Fixture) -> None:
    key = {"x-api-key": fx.key()}
    async with started(settings) as app:
        r = await app.client.post("/v1/classify", json={"text": "card"}, headers=key)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found")
    fx.publish("alpha")
    fx.publish("beta")
    async with started(settings) as app:
        r = await app.client.post("/v1/classify", json={"text": "card"}, headers=key)
        assert r.status_code == 400
        assert r.json()["error"]["param"] == "model"
        assert "alpha, beta" in r.json()["error"]["message"]
    async with started(settings.model_copy(update={"default_model": "beta"})) as app:
        r = await app.client.post("/v1/classify", json={"text": "card"}, headers=key)
        assert r.json()["model"] == "beta"
