"""Abstaining through the API: a version's tuned rule empties `predicted` and sets `abstained`, a request can
override its numbers, versions without a rule never abstain, and each surface says so in its own shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from labelwise.api.schemas.classify import BatchResponse, ClassifyResponse
from labelwise.api.schemas.compat import TextClassificationResponse, VllmClassifyResponse
from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, Running, started, trained

pytestmark = pytest.mark.anyio

SURE = "my card is late"  # the keyword engine gives card about 0.87
UNSURE = "zzz"  # no keyword: a third for each label


@pytest.fixture
async def careful(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    """`intents` published with a rule: abstain under 0.5 confidence or a 0.1 margin."""
    rule = {"min_confidence": 0.5, "min_margin": 0.1, "target_precision": 0.95}
    fx.store.publish("intents", trained(), metrics={"abstain": rule}, data={"rows": 8})
    async with started(settings) as item:
        yield item


async def test_the_versions_rule_abstains_on_unsure_texts(careful: Running, auth: dict[str, str]) -> None:
    r = await careful.client.post("/v1/classify", json={"text": UNSURE}, headers=auth)
    assert r.status_code == 200, r.text
    body = ClassifyResponse.model_validate(r.json())
    assert body.abstained is True
    assert body.predicted == []
    assert len(body.labels) == 3  # the ranked scores are still there
    r = await careful.client.post("/v1/classify", json={"text": SURE}, headers=auth)
    body = ClassifyResponse.model_validate(r.json())
    assert (body.abstained, body.predicted) == (False, ["card"])


async def test_a_request_overrides_the_rule(careful: Running, auth: dict[str, str]) -> None:
    never = {"min_confidence": 0.0, "min_margin": 0.0}
    r = await careful.client.post("/v1/classify", json={"text": UNSURE, **never}, headers=auth)
    body = ClassifyResponse.model_validate(r.json())
    assert body.abstained is False
    assert len(body.predicted) == 1
    r = await careful.client.post("/v1/batch", json={"texts": [SURE, UNSURE], "min_confidence": 0.95}, headers=auth)
    batch = BatchResponse.model_validate(r.json())
    assert [(i.abstained, i.predicted) for i in batch.results] == [(True, []), (True, [])]


async def test_out_of_range_overrides_name_the_field(careful: Running, auth: dict[str, str]) -> None:
    for field, value in (("min_confidence", 1.5), ("min_margin", -0.1)):
        r = await careful.client.post("/v1/classify", json={"text": SURE, field: value}, headers=auth)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == field


async def test_a_version_without_a_rule_never_abstains(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.post("/v1/classify", json={"text": UNSURE}, headers=auth)
    body = ClassifyResponse.model_validate(r.json())
    assert (body.abstained, len(body.predicted)) == (False, 1)


async def test_vllm_and_categories_shapes_carry_the_flag(careful: Running, auth: dict[str, str]) -> None:
    r = await careful.client.post("/classify", json={"model": "intents", "input": [SURE, UNSURE]}, headers=auth)
    assert r.status_code == 200, r.text
    vllm = VllmClassifyResponse.model_validate(r.json())
    assert (vllm.data[0].label, vllm.data[0].abstained) == ("card", False)
    assert vllm.data[1].abstained is True
    assert vllm.data[1].label in {"card", "password", "topup"}  # vLLM's label stays the best label
    categories = [{"key": k} for k in ("card", "password", "topup")]
    payload = {"text": UNSURE, "type": "exclusive", "categories": categories, "model": "intents"}
    r = await careful.client.post("/text/classification", json=payload, headers=auth)
    assert r.status_code == 200, r.text
    found = TextClassificationResponse.model_validate(r.json())
    assert found.metadata.abstained is True
    assert sum(found.data.values()) == pytest.approx(1.0)


async def test_binary_categories_decide_nothing_when_the_model_abstains(careful: Running, auth: dict[str, str]) -> None:
    categories = [{"key": k} for k in ("card", "password", "topup")]
    answers = {}
    for text in (SURE, UNSURE):
        payload = {"text": text, "type": "binary", "threshold": 0.3, "categories": categories, "model": "intents"}
        r = await careful.client.post("/text/classification", json=payload, headers=auth)
        assert r.status_code == 200, r.text
        answers[text] = TextClassificationResponse.model_validate(r.json())
    assert answers[SURE].data == {"card": 1.0, "password": 0.0, "topup": 0.0}
    assert answers[SURE].metadata.abstained is False
    # A third each clears the 0.3 cut, but the model abstained: a binary answer is a decision, so every one is 0.
    assert answers[UNSURE].data == {"card": 0.0, "password": 0.0, "topup": 0.0}
    assert answers[UNSURE].metadata.abstained is True


async def test_the_labels_shape_is_zero_shot_and_never_abstains(careful: Running, auth: dict[str, str]) -> None:
    r = await careful.client.post(
        "/classification", json={"text": UNSURE, "labels": ["card", "password"]}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"labels", "scores"}  # its documented fields only
    assert sorted(r.json()["labels"]) == ["card", "password"]


async def test_zero_shot_abstains_only_when_the_request_says(careful: Running, auth: dict[str, str]) -> None:
    base = {"text": UNSURE, "labels": ["card", "password", "topup"]}
    r = await careful.client.post("/v1/classify", json=base, headers=auth)
    assert ClassifyResponse.model_validate(r.json()).abstained is False
    r = await careful.client.post("/v1/classify", json={**base, "min_confidence": 0.99}, headers=auth)
    body = ClassifyResponse.model_validate(r.json())
    assert (body.abstained, body.predicted, len(body.labels)) == (True, [], 3)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "NaN", "abc"])
async def test_bad_overrides_never_reach_the_engine(careful: Running, auth: dict[str, str], value: str) -> None:
    # Raw JSON: Python's parser would accept NaN, which no comparison catches.
    body = '{"text": "my card is late", "min_margin": ' + (f'"{value}"' if value == "abc" else value) + "}"
    r = await careful.client.post("/v1/classify", content=body, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "min_margin"
    assert "min_margin" in error["message"]
