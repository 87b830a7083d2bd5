"""The `zeroshot` engine: label names or categories, the four modes, fitting on labeled data, artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import shared_encoder

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.zeroshot import ZeroShotEngine, humanize, label_text
from labelwise.errors import InvalidRequest, ModelLoadError

TEXTS = ["My card was stolen and I need a new one.", "It will rain all day tomorrow.", "What a brilliant goal!"]
LABELS = ["lost_card", "weather_forecast", "football"]

ENCODER = shared_encoder()


def test_label_texts_are_built_from_humanized_names_and_descriptions() -> None:
    assert humanize("card_arrival") == "card arrival"
    assert humanize("cardArrival") == "card arrival"
    assert label_text("card_arrival", None) == "card arrival"
    assert label_text("card_arrival", None, "This text is about {label}.") == "This text is about card arrival."
    assert label_text("spam", "unwanted advertising") == "spam: unwanted advertising"


def test_exclusive_scores_sum_to_one_and_pick_the_right_label() -> None:
    engine = ZeroShotEngine.from_labels(LABELS, encoder=ENCODER)
    proba = engine.predict_proba(TEXTS)
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert engine.task_ is TaskType.SINGLE_LABEL
    assert engine.predict(TEXTS) == [[label] for label in LABELS]


def test_categories_with_descriptions() -> None:
    categories = {"billing": "questions about invoices and payments", "bug": "the software crashes or misbehaves"}
    engine = ZeroShotEngine.from_labels(categories, encoder=ENCODER)
    assert engine.predict(["The app crashes when I open settings.", "Why was I charged twice?"]) == [
        ["bug"],
        ["billing"],
    ]
    assert engine.descriptions_ == categories


def test_confidence_scores_are_independent_and_binary_is_zero_or_one() -> None:
    confidence = ZeroShotEngine.from_labels(LABELS, mode="confidence", encoder=ENCODER).predict_proba(TEXTS)
    assert ((confidence > 0) & (confidence < 1)).all()
    assert not np.allclose(confidence.sum(axis=1), 1.0)
    assert (np.argmax(confidence, axis=1) == [0, 1, 2]).all()
    binary = ZeroShotEngine.from_labels(LABELS, mode="binary", threshold=0.3, encoder=ENCODER).predict_proba(TEXTS)
    assert set(np.unique(binary)) <= {0.0, 1.0}
    np.testing.assert_array_equal(binary, (confidence >= 0.3).astype(float))


def test_bad_requests_name_the_field() -> None:
    with pytest.raises(InvalidRequest, match="mode"):
        ZeroShotEngine.from_labels(LABELS, mode="softmax", encoder=ENCODER)
    with pytest.raises(InvalidRequest, match="labels"):
        ZeroShotEngine.from_labels(["only"], encoder=ENCODER)
    with pytest.raises(InvalidRequest, match="threshold"):
        ZeroShotEngine.from_labels(LABELS, mode="binary", threshold=2.0, encoder=ENCODER)


def test_fit_on_labeled_data_tunes_the_temperature() -> None:
    texts = [*TEXTS, "I lost my debit card on the bus.", "Sunny skies all week.", "The keeper made a great save."]
    labels: list[tuple[str, ...]] = [(label,) for label in LABELS * 2]
    engine = ZeroShotEngine(encoder=ENCODER).fit(LabeledTexts(texts, labels), LabeledTexts([], []))
    assert engine.classes_ == sorted(LABELS)
    assert engine.temperature_ != engine.temperature
    multi = ZeroShotEngine(encoder=ENCODER).fit(LabeledTexts(texts, labels), LabeledTexts([], []), multi_label=True)
    assert multi.task_ is TaskType.MULTI_LABEL
    assert multi.thresholds_ is not None
    assert multi.get_params()["fitted"]["mode"] == "multi_label"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    engine = ZeroShotEngine.from_labels({"billing": "invoices", "bug": ""}, mode="confidence", encoder=ENCODER)
    engine.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["label_vectors.npy", "zeroshot.json"]
    loaded = ZeroShotEngine.load(tmp_path, encoder=ENCODER)
    np.testing.assert_allclose(loaded.predict_proba(TEXTS), engine.predict_proba(TEXTS), atol=1e-12)
    assert loaded.get_params() == engine.get_params()
    meta = json.loads((tmp_path / "zeroshot.json").read_text())
    meta["encoder"]["model_id"] = "another-model"
    (tmp_path / "zeroshot.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="encoder"):
        ZeroShotEngine.load(tmp_path, encoder=ENCODER)
