"""Rollout without restart: a `canary` alias takes a share of traffic, a `shadow` alias scores in the background."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from labelwise.api.schemas.classify import ClassifyResponse
from labelwise.monitoring.service import Monitoring
from tests.api.serving_fakes import TRAIN, Fixture, KeywordEngine, Running, make_settings, started, trained

pytestmark = pytest.mark.anyio

TEXTS = ["my card is late", "top up please", "password reset", "hello", "card top up", "reset my card"]


async def _until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await anyio.sleep(0.01)


def _disagreeing() -> KeywordEngine:
    # Trained with the card and password labels swapped: a shadow that disagrees on those texts.
    swap: dict[str, tuple[str, ...]] = {"card": ("password",), "password": ("card",), "topup": ("topup",)}
    labels = [swap[labels[0]] for labels in TRAIN.labels]
    return trained(train=type(TRAIN)(texts=list(TRAIN.texts), labels=labels))


async def test_shadow_never_changes_responses_and_counts_agreement(
    running: Running, fx: Fixture, auth: dict[str, str]
) -> None:
    before = [(await running.client.post("/v1/classify", json={"text": t}, headers=auth)).json() for t in TEXTS]
    fx.store.set_alias("intents", "production", "1.0.0")  # else production follows the newest version
    shadow = fx.publish("intents", _disagreeing())
    fx.store.set_alias("intents", "shadow", shadow.version)
    monitoring: Monitoring = running.app.container.monitoring
    monitoring.shadow_sample = 1.0  # every request, so the count below is exact (the default is a sample)
    await _until(lambda: any("shadow" in v.aliases for v in running.app.container.manager.models()["intents"]))
    after = [(await running.client.post("/v1/classify", json={"text": t}, headers=auth)).json() for t in TEXTS]
    for old, new in zip(before, after, strict=True):
        old_body, new_body = ClassifyResponse.model_validate(old), ClassifyResponse.model_validate(new)
        assert (new_body.labels, new_body.predicted, new_body.model_version) == (
            old_body.labels,
            old_body.predicted,
            old_body.model_version,
        )
    await _until(lambda: sum(t.total for t in monitoring.shadow.values()) == len(TEXTS))
    [(pair, stats)] = monitoring.shadow_agreement().items()
    assert pair == f"intents:1.0.0->{shadow.version}"
    assert stats["compared"] == len(TEXTS)
    agreement = stats["agreement"]
    assert isinstance(agreement, float)
    assert 0.0 < agreement < 1.0  # the top-up texts agree, the card and password ones do not


async def test_canary_takes_a_deterministic_share(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "canary", database_url, canary_share=0.5)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        fixture.store.set_alias("intents", "production", "1.0.0")
        canary = fixture.publish("intents", trained(boost=2.0))
        fixture.store.set_alias("intents", "canary", canary.version)
        key = {"x-api-key": fixture.key("classify")}
        async with started(settings) as running:

            async def version(request_id: str, model: str = "intents") -> str:
                body = {"text": "my card is late", "model": model}
                r = await running.client.post("/v1/classify", json=body, headers=key | {"x-request-id": request_id})
                assert r.status_code == 200, r.text
                return str(r.json()["model_version"])

            served = [await version(f"req-{i}") for i in range(60)]
            assert {"1.0.0", canary.version} == set(served)
            assert 15 <= served.count(canary.version) <= 45
            again = [await version(f"req-{i}") for i in range(60)]
            assert again == served  # the same request id always lands on the same version
            pinned = {await version(f"req-{i}", "intents@production") for i in range(20)}
            assert pinned == {"1.0.0"}  # an explicit alias or version is never redirected
    finally:
        fixture.close()


async def test_shadow_sample_zero_scores_nothing(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    fx.store.set_alias("intents", "production", "1.0.0")
    fx.store.set_alias("intents", "shadow", fx.publish("intents", _disagreeing()).version)
    monitoring: Monitoring = running.app.container.monitoring
    await _until(lambda: any("shadow" in v.aliases for v in running.app.container.manager.models()["intents"]))
    monitoring.shadow_sample = 0.0
    for text in TEXTS:
        assert (await running.client.post("/v1/classify", json={"text": text}, headers=auth)).status_code == 200
    monitoring.shadow_sample = 1.0
    assert (await running.client.post("/v1/classify", json={"text": TEXTS[0]}, headers=auth)).status_code == 200
    await _until(lambda: sum(t.total for t in monitoring.shadow.values()) == 1)
