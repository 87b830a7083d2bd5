"""The labels API, `POST /classification` with `Authorization: Token KEY`: labels and scores, best first."""

from __future__ import annotations

import pytest

from labelwise.api.schemas.compat import LabelsClassificationResponse
from labelwise.api.schemas.errors import ErrorResponse
from tests.api.serving_fakes import Running

pytestmark = pytest.mark.anyio

LABELS = ["politics", "sport", "cooking"]


async def test_sorted_by_score(running: Running, key: str) -> None:
    body = {"text": "The football team won the championship match", "labels": LABELS}
    r = await running.client.post("/classification", json=body, headers={"Authorization": f"Token {key}"})
    assert r.status_code == 200, r.text
    answer = LabelsClassificationResponse.model_validate(r.json())
    assert answer.labels[0] == "sport"
    assert sorted(answer.labels) == sorted(LABELS)
    assert answer.scores == sorted(answer.scores, reverse=True)
    assert sum(answer.scores) == pytest.approx(1.0)


async def test_multi_class_scores_are_independent(running: Running, key: str) -> None:
    body = {"text": "The football team won the championship match", "labels": LABELS, "multi_class": True}
    r = await running.client.post("/classification", json=body, headers={"Authorization": f"Token {key}"})
    answer = LabelsClassificationResponse.model_validate(r.json())
    assert answer.labels[0] == "sport"
    assert sum(answer.scores) != pytest.approx(1.0)


async def test_errors_name_the_field(running: Running, key: str) -> None:
    body = {"text": "a", "labels": ["x" * 101, "b"]}
    r = await running.client.post("/classification", json=body, headers={"Authorization": f"Token {key}"})
    assert r.status_code == 400
    assert ErrorResponse.model_validate(r.json()).error.param == "labels[0]"
    r = await running.client.post("/classification", json={"text": "a", "labels": ["a", "b"]})
    assert r.status_code == 401
