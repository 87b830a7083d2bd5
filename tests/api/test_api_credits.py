"""Credits and usage through the API, on SQLite and PostgreSQL: cost headers, 402, the atomic debit under
concurrency, refunds, and billed texts equal to the texts of 2xx responses."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from labelwise.api.schemas.classify import BatchResponse
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.api.schemas.usage import UsageResponse
from labelwise.config import Settings
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import Fixture, KeywordEngine, Running, make_settings, started

pytestmark = pytest.mark.anyio

PRICE = 2  # credits per text for the test engine


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, credit_prices={KeywordEngine.name: PRICE}, cache_size=0)


@pytest.fixture
async def running(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    fx.publish("intents")
    async with started(settings) as item:
        yield item


def funded(fx: Fixture, credits: int | None, rate_limit: str | None = None) -> tuple[str, str]:
    secret, info = fx.keys.create("funded", ["classify"], settings=KeyChanges(credits=credits, rate_limit=rate_limit))
    return secret, info.prefix


def balance(fx: Fixture, prefix: str) -> int | None:
    return fx.keys.get(prefix).credits


async def usage_of(app: Running, key: str, *, reader: str | None = None) -> UsageResponse:
    """The key's usage, read with the key itself or (when it may be rate limited) with an admin `reader`."""
    params = {"key": key.split("_")[1]} if reader else {}
    r = await app.client.get("/v1/usage", params=params, headers={"x-api-key": reader or key})
    assert r.status_code == 200, r.text
    return UsageResponse.model_validate(r.json())


async def test_cost_and_balance_headers(running: Running, fx: Fixture) -> None:
    key, prefix = funded(fx, 10)
    headers = {"x-api-key": key}
    r = await running.client.post("/v1/classify", json={"text": "my card"}, headers=headers)
    assert r.status_code == 200
    assert (r.headers["x-credits-cost"], r.headers["x-credits-remaining"]) == (str(PRICE), "8")
    r = await running.client.post("/v1/batch", json={"texts": ["a card", "top up", "password"]}, headers=headers)
    assert (r.headers["x-credits-cost"], r.headers["x-credits-remaining"]) == (str(3 * PRICE), "2")
    assert balance(fx, prefix) == 2
    models = await running.client.get("/v1/models", headers=headers)
    assert models.status_code == 200
    assert "x-credits-cost" not in models.headers  # reading models costs nothing
    assert balance(fx, prefix) == 2


async def test_out_of_credits_is_402_and_charges_nothing(running: Running, fx: Fixture) -> None:
    key, prefix = funded(fx, 3)
    headers = {"x-api-key": key}
    r = await running.client.post("/v1/batch", json={"texts": ["card", "card"]}, headers=headers)
    assert r.status_code == 402
    error = ErrorResponse.model_validate(r.json()).error
    assert error.code == "INSUFFICIENT_BALANCE"
    assert "costs 4" in error.message
    assert "balance is 3" in error.message
    assert balance(fx, prefix) == 3
    assert (await running.client.post("/v1/classify", json={"text": "card"}, headers=headers)).status_code == 200
    assert (await running.client.post("/v1/classify", json={"text": "card"}, headers=headers)).status_code == 402
    assert balance(fx, prefix) == 1
    assert (await usage_of(running, key)).total.texts == 1


async def test_bad_input_and_failures_are_not_billed(running: Running, fx: Fixture) -> None:
    key, prefix = funded(fx, 100)
    headers = {"x-api-key": key}
    bad = [
        {"text": ""},
        {"text": "x" * 20_000},
        {"text": "card", "model": "nope"},
        {"text": "card", "top_k": 0},
    ]
    for body in bad:
        r = await running.client.post("/v1/classify", json=body, headers=headers)
        assert 400 <= r.status_code < 500, body
        assert "x-credits-cost" not in r.headers
    KeywordEngine.fail_on = "boom"
    r = await running.client.post("/v1/batch", json={"texts": ["card", "boom"]}, headers=headers)
    assert r.status_code == 500
    assert balance(fx, prefix) == 100  # debited before inference, refunded when it failed
    assert (await usage_of(running, key)).data == []


async def test_concurrent_requests_never_spend_a_credit_twice(running: Running, fx: Fixture) -> None:
    key, prefix = funded(fx, 50 * PRICE)
    headers = {"x-api-key": key}
    responses = await asyncio.gather(
        *[running.client.post("/v1/classify", json={"text": f"card {i}"}, headers=headers) for i in range(100)]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 50 + [402] * 50
    assert balance(fx, prefix) == 0
    usage = await usage_of(running, key)
    assert (usage.total.requests, usage.total.texts, usage.total.credits) == (50, 50, 50 * PRICE)


async def test_unlimited_key_is_priced_and_counted_but_never_refused(running: Running, fx: Fixture) -> None:
    key, prefix = funded(fx, None)
    r = await running.client.post("/v1/batch", json={"texts": ["card"] * 5}, headers={"x-api-key": key})
    assert r.status_code == 200
    assert r.headers["x-credits-cost"] == str(5 * PRICE)
    assert "x-credits-remaining" not in r.headers
    assert balance(fx, prefix) is None
    assert (await usage_of(running, key)).total.credits == 5 * PRICE


async def _send(client: httpx.AsyncClient, key: str, kind: str, rng: random.Random) -> tuple[int, int]:
    """One request of a mixed workload: (status, texts in it)."""
    headers = {"x-api-key": key}
    if kind == "single":
        r = await client.post("/v1/classify", json={"text": f"card {rng.random()}"}, headers=headers)
        return r.status_code, 1
    if kind == "batch":
        texts = [f"top up {rng.random()}" for _ in range(rng.randint(1, 6))]
        r = await client.post("/v1/batch", json={"texts": texts}, headers=headers)
        if r.status_code == 200:
            assert len(BatchResponse.model_validate(r.json()).results) == len(texts)
        return r.status_code, len(texts)
    texts = ["fine", ""] if kind == "bad-item" else ["x" * 20_000]
    r = await client.post("/v1/batch", json={"texts": texts}, headers=headers)
    return r.status_code, len(texts)


async def test_mixed_workload_bills_exactly_the_texts_of_2xx_responses(settings: Settings, fx: Fixture) -> None:
    fx.publish("intents")
    key, prefix = funded(fx, 10_000, rate_limit="60/minute")
    rng = random.Random(7)
    kinds = rng.choices(["single", "batch", "bad-item", "too-long"], weights=[5, 4, 1, 1], k=90)
    async with started(settings) as app:
        results = await asyncio.gather(*[_send(app.client, key, kind, rng) for kind in kinds])
        usage = await usage_of(app, key, reader=fx.key("admin"))
    codes = {code for code, _ in results}
    assert codes == {200, 400, 429}, codes  # successes, bad input and limit hits all happened
    ok_texts = sum(texts for code, texts in results if code == 200)
    ok_requests = sum(1 for code, _ in results if code == 200)
    assert usage.total.texts == ok_texts
    assert usage.total.requests == ok_requests
    assert usage.total.credits == ok_texts * PRICE == 10_000 - (balance(fx, prefix) or 0)
    assert {row.route for row in usage.data} <= {"/v1/classify", "/v1/batch"}
