"""vLLM's `POST /classify`: probs in the model's label order, one item per input, OpenAI-shaped errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from labelwise.api.schemas.compat import VllmClassifyResponse
from labelwise.api.schemas.embeddings import OpenAIErrorResponse
from labelwise.api.schemas.models import ModelDetail
from tests.api.serving_fakes import Fixture, Running, trained

pytestmark = pytest.mark.anyio


async def test_probs_follow_the_models_label_order(running: Running, auth: dict[str, str]) -> None:
    detail = ModelDetail.model_validate((await running.client.get("/v1/models/intents", headers=auth)).json())
    labels = detail.versions[0].labels
    texts = ["my card has not arrived", "reset the password please"]
    r = await running.client.post("/classify", json={"model": "intents", "input": texts}, headers=auth)
    assert r.status_code == 200, r.text
    answer = VllmClassifyResponse.model_validate(r.json())
    assert answer.id.startswith("classify-")
    assert (answer.object, answer.model) == ("list", "intents")
    assert [d.index for d in answer.data] == [0, 1]
    expected = trained().predict_proba(texts)
    for item, row in zip(answer.data, expected, strict=True):
        assert item.num_classes == len(labels) == len(item.probs)
        np.testing.assert_allclose(item.probs, row, atol=1e-9)
        assert item.label == labels[int(np.argmax(row))]
    assert [d.label for d in answer.data] == ["card", "password"]
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 9


async def test_one_string_and_truncation(running: Running, auth: dict[str, str]) -> None:
    body = {"model": "intents", "input": "reset password card card card", "truncate_prompt_tokens": 2}
    r = await running.client.post("/classify", json=body, headers=auth)
    answer = VllmClassifyResponse.model_validate(r.json())
    assert [d.label for d in answer.data] == ["password"]  # the cards were cut off
    assert answer.usage.prompt_tokens == 2


async def test_multi_label_models_give_independent_scores(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    engine = trained()
    engine.task_ = engine.task_.MULTI_LABEL
    engine.thresholds_ = np.full(len(engine.classes_), 0.3)
    fx.publish("tags", engine)
    await running.manager.refresh()
    r = await running.client.post("/classify", json={"model": "tags", "input": "card"}, headers=auth)
    answer = VllmClassifyResponse.model_validate(r.json())
    assert answer.data[0].label == "card"
    assert answer.data[0].num_classes == 3


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "nope", "input": "a"}, 404, "model"),
        ({"model": "intents", "input": []}, 400, "input"),
        ({"model": "intents", "input": ["a", ""]}, 400, "input[1]"),
        ({"model": "intents", "input": "a", "truncate_prompt_tokens": 0}, 400, "truncate_prompt_tokens"),
        ({"model": "intents", "input": "a", "temperature": 1}, 400, "temperature"),
    ],
)
async def test_errors_have_vllms_shape(
    running: Running, auth: dict[str, str], body: dict[str, Any], status: int, param: str
) -> None:
    r = await running.client.post("/classify", json=body, headers=auth)
    assert r.status_code == status, r.text
    error = OpenAIErrorResponse.model_validate(r.json()).error
    assert (error.code, error.param) == (status, param)


async def test_unauthorized_in_vllms_shape(running: Running) -> None:
    r = await running.client.post("/classify", json={"model": "intents", "input": "a"})
    assert r.status_code == 401
    assert OpenAIErrorResponse.model_validate(r.json()).error.type == "authentication_error"


async def test_raw_scores_of_a_multi_label_model_are_log_odds(
    running: Running, fx: Fixture, auth: dict[str, str]
) -> None:
    engine = trained()
    engine.task_ = engine.task_.MULTI_LABEL
    engine.thresholds_ = np.full(len(engine.classes_), 0.3)
    fx.publish("tags", engine)
    await running.manager.refresh()
    body = {"model": "tags", "input": ["card", "password card"]}
    scores = VllmClassifyResponse.model_validate(
        (await running.client.post("/classify", json=body, headers=auth)).json()
    )
    body["use_activation"] = False
    raw = VllmClassifyResponse.model_validate((await running.client.post("/classify", json=body, headers=auth)).json())
    for probs, logits in zip(scores.data, raw.data, strict=True):
        np.testing.assert_allclose(1.0 / (1.0 + np.exp(-np.asarray(logits.probs))), probs.probs, rtol=1e-9)
        assert logits.label == probs.label
