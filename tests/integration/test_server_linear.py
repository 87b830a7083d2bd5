"""End to end with the real `linear` engine: train on banking77, publish, serve over HTTP, classify and batch."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.api.serving_fakes import Fixture, make_settings, serving

from labelwise.api import create_app
from labelwise.api.schemas.classify import BatchResponse, ClassifyResponse
from labelwise.api.schemas.models import ModelDetail
from labelwise.config import Settings
from labelwise.domain import LabeledTexts
from labelwise.engines.factory import create_engine

pytestmark = pytest.mark.slow


def banking77(shared_data: Path, per_label: int) -> tuple[LabeledTexts, list[str]]:
    """Up to `per_label` training rows of each intent, and some test texts."""
    rows = [json.loads(line) for line in (shared_data / "banking77" / "train.jsonl").read_text().splitlines()]
    taken: dict[str, int] = {}
    texts, labels = [], []
    for row in rows:
        if taken.get(row["label"], 0) < per_label:
            taken[row["label"]] = taken.get(row["label"], 0) + 1
            texts.append(row["text"])
            labels.append((row["label"],))
    tests = [json.loads(line)["text"] for line in (shared_data / "banking77" / "test.jsonl").read_text().splitlines()]
    return LabeledTexts(texts, labels), tests[:40]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


def test_linear_model_served_end_to_end(settings: Settings, shared_data: Path) -> None:
    train, tests = banking77(shared_data, per_label=12)
    engine = create_engine("linear").fit(train, train)
    fx = Fixture(settings)
    try:
        fx.publish("banking77", engine)
        headers = {"x-api-key": fx.key()}
        with serving(create_app(settings)) as base, httpx.Client(base_url=base, headers=headers) as client:
            detail = ModelDetail.model_validate(client.get("/v1/models/banking77").json())
            assert detail.versions[0].labels == engine.classes_
            batch = BatchResponse.model_validate(client.post("/v1/batch", json={"texts": tests, "top_k": 5}).json())
            for text, item in zip(tests, batch.results, strict=True):
                r = client.post("/v1/classify", json={"text": text, "top_k": 5})
                single = ClassifyResponse.model_validate(r.json())
                assert single.predicted == item.predicted
                assert [s.label for s in single.labels] == [s.label for s in item.labels]
                assert [s.score for s in single.labels] == pytest.approx([s.score for s in item.labels], abs=1e-9)
                assert single.predicted[0] == single.labels[0].label
            card = client.post("/v1/classify", json={"text": "My new card still has not arrived"}).json()
            assert card["predicted"][0] in engine.classes_
            assert sum(s["score"] for s in card["labels"]) <= 1.0 + 1e-9
    finally:
        fx.close()
