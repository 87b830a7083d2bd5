"""The Python client against a real app under uvicorn on loopback, serving a trained linear model (SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from labelwise.api import create_app
from labelwise.client import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    InsufficientBalanceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from labelwise.engines.linear import LinearEngine
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import TRAIN, Fixture, make_settings, serving, wait_until


@dataclass
class Live:
    base: str
    key: str
    fx: Fixture

    def client(self, key: str | None = None, **kwargs: Any) -> Client:
        return Client(self.base, key or self.key, **kwargs)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root: Path = tmp_path_factory.mktemp("client-live")
    settings = make_settings(root / "data", f"sqlite:///{root / 'labelwise.db'}")
    fx = Fixture(settings)
    fx.publish("intents", LinearEngine().fit(TRAIN, TRAIN))
    try:
        with serving(create_app(settings)) as base:
            yield Live(base, fx.key("classify"), fx)
    finally:
        fx.close()


def test_classify_and_batch(live: Live) -> None:
    with live.client() as client:
        one = client.classify("my card is late", top_k=2)
        many = client.batch(["my card is late", "reset my password please", "top up by bank transfer"])
    assert one.predicted == ["card"]
    assert len(one.labels) == 2
    assert one.labels[0].label == "card"
    assert (one.model, one.model_version, one.top_k) == ("intents", "1.0.0", 2)
    assert one.request_id.startswith("req_")
    assert [item.predicted for item in many.results] == [["card"], ["password"], ["topup"]]
    assert [item.index for item in many.results] == [0, 1, 2]
    assert many.results[0].labels[0] == one.labels[0]


def test_models_and_model_detail(live: Live) -> None:
    with live.client() as client:
        models = client.models()
        detail = client.model("intents")
        with pytest.raises(NotFoundError) as missing:
            client.model("nope")
    # The list may hold more than our model (the server adds its embedding model in OpenAI's list shape).
    intents = {m.id: m for m in models}["intents"]
    assert intents.versions[0].engine == "linear"
    assert intents.aliases["production"] == "1.0.0"
    assert detail.versions[0].labels == ["card", "password", "topup"]
    assert detail.aliases["production"] == "1.0.0"
    assert missing.value.param == "name"


def test_usage_counts_what_this_key_did(live: Live) -> None:
    key = live.fx.key("classify")
    with live.client(key) as client:
        client.classify("my card is late")
        client.batch(["where is my card", "top up"])
        wait_until(lambda: client.usage().total.texts >= 3, timeout=10)
        usage = client.usage()
    assert usage.total.requests == 2
    assert {row.route for row in usage.data} == {"/v1/classify", "/v1/batch"}
    assert usage.start <= usage.end


def test_errors_carry_code_param_status_and_request_id(live: Live) -> None:
    with live.client() as client:
        with pytest.raises(NotFoundError) as unknown_model:
            client.classify("my card", model="nope")
        with pytest.raises(BadRequestError) as bad_input:
            client.classify("my card", top_k=0)
    error = unknown_model.value
    assert (error.status_code, error.code, error.param) == (404, "model_not_found", "model")
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert "nope" in error.message
    assert (bad_input.value.code, bad_input.value.param) == ("invalid_request", "top_k")
    with live.client("lw_00000000_notakey") as client, pytest.raises(AuthenticationError) as auth:
        client.models()
    assert auth.value.code == "unauthorized"
    assert "lw_00000000_notakey" not in str(auth.value)
    with live.client(live.fx.key("train")) as client, pytest.raises(PermissionDeniedError):
        client.classify("my card")


def test_insufficient_balance_and_rate_limit_with_retry_after(live: Live) -> None:
    broke, _ = live.fx.keys.create("broke", ["classify"], settings=KeyChanges(credits=0))
    with live.client(broke) as client, pytest.raises(InsufficientBalanceError) as balance:
        client.classify("my card")
    assert balance.value.code == "INSUFFICIENT_BALANCE"
    limited, _ = live.fx.keys.create("limited", ["classify"], settings=KeyChanges(rate_limit="1/minute"))
    sleeps: list[float] = []
    with live.client(limited, max_retries=2, sleep=sleeps.append) as client:
        client.classify("my card")
        with pytest.raises(RateLimitError) as limit:
            client.classify("my card")
    assert limit.value.retry_after is not None
    assert limit.value.retry_after > 0
    assert len(sleeps) == 2
    assert all(0 < s <= 60 for s in sleeps)


def test_async_client(live: Live) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient(live.base, live.key) as client:
            one = await client.classify("reset my password")
            models = await client.models()
            return [*one.predicted, *(m.id for m in models if m.id == "intents")]

    assert anyio.run(scenario) == ["password", "intents"]


def test_embeddings_when_the_route_exists(live: Live) -> None:
    probe = httpx.post(live.base + "/v1/embeddings", json={}, headers={"x-api-key": live.key}, timeout=30)
    if probe.status_code == 404:
        pytest.skip("/v1/embeddings is not served yet")
    with live.client(timeout=120) as client:
        result = client.embeddings(["my card is late", "reset my password"], model="labelwise-embed")
        with pytest.raises(BadRequestError) as empty:
            client.embeddings([""], model="labelwise-embed")
    assert len(result.vectors) == 2
    assert len(result.vectors[0]) == len(result.vectors[1]) > 0
    assert empty.value.param is not None
