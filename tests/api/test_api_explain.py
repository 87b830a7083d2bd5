"""`explain: true` on `/v1/classify`: terms are words of the text, per returned label, strongest first."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labelwise.api.schemas.classify import ClassifyResponse
from labelwise.config import Settings
from labelwise.domain import LabeledTexts
from labelwise.engines.auto import AutoEngine
from tests.api.monitoring_fakes import read_jsonl, trec_model
from tests.api.serving_fakes import Fixture, Running, started

pytestmark = pytest.mark.anyio


def words_of(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


async def test_linear_explanations_name_words_of_the_text(
    settings: Settings, fx: Fixture, auth: dict[str, str], shared_data: Path
) -> None:
    engine, metrics = trec_model(shared_data)
    fx.store.publish("trec", engine, metrics=metrics, data={})
    text = "Who was the first president of the United States ?"
    async with started(settings) as running:
        r = await running.client.post(
            "/v1/classify", json={"text": text, "model": "trec", "explain": True, "top_k": 2}, headers=auth
        )
    assert r.status_code == 200, r.text
    body = ClassifyResponse.model_validate(r.json())
    assert body.explanations is not None
    assert [e.label for e in body.explanations] == [s.label for s in body.labels]
    top = body.explanations[0]
    assert top.label == "HUM"
    assert top.method == "linear"
    assert top.terms, "the best label has terms that raised it"
    weights = [t.weight for t in top.terms]
    assert weights == sorted(weights, reverse=True)
    assert all(w > 0 for w in weights)
    for explanation in body.explanations:
        for term in explanation.terms:
            assert set(term.term.split()) <= words_of(text), term.term
    # "who" is what makes a question about a person.
    assert "who" in " ".join(t.term for t in top.terms).split()


async def test_an_auto_model_whose_winner_is_linear_gets_linear_explanations(
    settings: Settings, fx: Fixture, auth: dict[str, str], shared_data: Path
) -> None:
    rows = read_jsonl(shared_data / "trec" / "train.jsonl", 1500)
    train, validation = (
        LabeledTexts([r["text"] for r in p], [(r["label"],) for r in p]) for p in (rows[:1200], rows[1200:])
    )
    auto = AutoEngine(candidates=("linear",)).fit(train, validation)
    fx.store.publish("trec", auto, metrics={}, data={})
    text = "Who was the first president of the United States ?"
    async with started(settings) as running:
        r = await running.client.post(
            "/v1/classify", json={"text": text, "model": "trec", "explain": True, "top_k": 1}, headers=auth
        )
    assert r.status_code == 200, r.text
    body = ClassifyResponse.model_validate(r.json())
    assert body.explanations is not None
    (top,) = body.explanations
    assert (top.label, top.method) == ("HUM", "linear")
    assert "who" in " ".join(t.term for t in top.terms).split()


async def test_other_engines_explain_by_leaving_words_out(running: Running, auth: dict[str, str]) -> None:
    text = "my card is late"
    r = await running.client.post("/v1/classify", json={"text": text, "explain": True}, headers=auth)
    assert r.status_code == 200, r.text
    body = ClassifyResponse.model_validate(r.json())
    assert body.explanations is not None
    card = next(e for e in body.explanations if e.label == "card")
    assert card.method == "leave_one_out"
    assert card.terms[0].term == "card"
    for explanation in body.explanations:
        assert {t.term for t in explanation.terms} <= words_of(text)


async def test_no_explanations_unless_asked(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.post("/v1/classify", json={"text": "my card is late"}, headers=auth)
    assert r.json()["explanations"] is None
