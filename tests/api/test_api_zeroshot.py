"""Zero-shot through `/v1/classify` and `/v1/batch`: `labels` or `categories` with no `model`, scored by the real
sentence encoder (the shared test model), billed as engine `zeroshot`, refused with 400s naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from labelwise.api.schemas.classify import BatchResponse, ClassifyResponse
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.encoder import MODEL_ID
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import Fixture, Running

pytestmark = pytest.mark.anyio

LABELS = ["sports", "cooking", "finance"]


async def classify(running: Running, auth: dict[str, str], **body: Any) -> ClassifyResponse:
    r = await running.client.post("/v1/classify", json=body, headers=auth)
    assert r.status_code == 200, r.text
    return ClassifyResponse.model_validate(r.json())


async def test_labels_give_exclusive_scores_from_model_zeroshot(running: Running, auth: dict[str, str]) -> None:
    answer = await classify(running, auth, text="The striker scored twice in the football match", labels=LABELS)
    assert (answer.model, answer.model_version) == ("zeroshot", MODEL_ID)
    assert answer.predicted == ["sports"]
    assert next(s.label for s in answer.labels) == "sports"
    assert math.isclose(sum(s.score for s in answer.labels), 1.0, abs_tol=1e-6)  # top_k 3 of 3 labels


async def test_categories_with_descriptions_and_multi_label(running: Running, auth: dict[str, str]) -> None:
    categories = [
        {"key": "food", "description": "recipes, cooking and restaurants"},
        {"key": "money", "description": "banks, prices and payments"},
        {"key": "weather", "description": "rain, sun and temperature"},
    ]
    text = "The restaurant bill was far too expensive for such a small pasta dish"
    answer = await classify(running, auth, text=text, categories=categories, multi_label=True, top_k=3)
    scores = {s.label: s.score for s in answer.labels}
    assert set(scores) == {"food", "money", "weather"}
    assert sum(scores.values()) != pytest.approx(1.0)  # independent scores
    assert answer.predicted == [k for k in ("food", "money", "weather") if scores[k] >= 0.5]
    assert scores["weather"] < min(scores["food"], scores["money"])


async def test_batch_equals_texts_one_by_one(running: Running, auth: dict[str, str]) -> None:
    texts = ["Stir the sauce and add garlic", "Stocks fell sharply today", "A great tennis final"]
    r = await running.client.post("/v1/batch", json={"texts": texts, "labels": LABELS, "top_k": 3}, headers=auth)
    assert r.status_code == 200, r.text
    batch = BatchResponse.model_validate(r.json())
    assert (batch.model, batch.model_version) == ("zeroshot", MODEL_ID)
    for item, text in zip(batch.results, texts, strict=True):
        alone = await classify(running, auth, text=text, labels=LABELS)
        assert item.predicted == alone.predicted
        assert [s.label for s in item.labels] == [s.label for s in alone.labels]
        for a, b in zip(item.labels, alone.labels, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-5)
    assert [r.predicted[0] for r in batch.results] == ["cooking", "finance", "sports"]


async def test_label_sets_are_cached(running: Running, auth: dict[str, str]) -> None:
    zeroshot = running.app.container.zeroshot
    for text in ("a football game", "a bank loan", "a football game"):
        await classify(running, auth, text=text, labels=LABELS)
    await classify(running, auth, text="a bank loan", labels=[*LABELS, "travel"])
    assert len(zeroshot._engines) == 2


async def test_billed_at_the_zeroshot_price(running: Running, fx: Fixture) -> None:
    key, _info = fx.keys.create("funded", ["classify"], settings=KeyChanges(credits=100))
    headers = {"x-api-key": key}
    r = await running.client.post("/v1/batch", json={"texts": ["a", "b"], "labels": LABELS}, headers=headers)
    assert r.status_code == 200, r.text
    price = running.app.container.settings.credit_prices["zeroshot"]
    assert (r.headers["x-credits-cost"], r.headers["x-credits-remaining"]) == (str(2 * price), str(100 - 2 * price))


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"labels": [f"l{i}" for i in range(101)]}, "labels", "101 labels, the limit is 100"),
        ({"labels": ["x" * 101, "b"]}, "labels[0]", "101 characters, the limit is 100"),
        ({"labels": ["a", ""]}, "labels[1]", "must not be empty"),
        ({"labels": ["a", "a"]}, "labels[1]", "given twice"),
        ({"labels": ["only"]}, "labels", "at least 2 labels"),
        ({"labels": []}, "labels", "at least one label"),
        ({"labels": ["a", "b"], "model": "intents"}, "model", "leave it out"),
        ({"labels": ["a", "b"], "categories": [{"key": "c"}]}, "categories", "not both"),
        ({"multi_label": True}, "multi_label", "only for zero-shot"),
        ({"labels": ["a", "b"], "explain": True}, "explain", "not available for zero-shot"),
        ({"labels": "a,b"}, "labels", "valid list"),
        ({"categories": [{"key": "a", "description": "d" * 501}, {"key": "b"}]}, "categories[0].description", "501"),
        ({"categories": [{"key": "a", "colour": "red"}]}, "categories[0].colour", "extra"),
    ],
)
async def test_bad_zero_shot_options_are_400_naming_the_field(
    running: Running, auth: dict[str, str], body: dict[str, Any], param: str, fragment: str
) -> None:
    r = await running.client.post("/v1/classify", json={"text": "hello", **body}, headers=auth)
    assert r.status_code == 400, r.text
    error = ErrorResponse.model_validate(r.json()).error
    assert error.code == "invalid_request"
    assert error.param == param
    assert fragment in error.message


async def test_text_limits_still_apply(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.post("/v1/batch", json={"texts": ["ok", ""], "labels": LABELS}, headers=auth)
    assert r.status_code == 400
    assert ErrorResponse.model_validate(r.json()).error.param == "texts[1]"
