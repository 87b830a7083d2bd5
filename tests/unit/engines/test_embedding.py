"""The `embedding` engine: contract, few-shot fitting, multi-label thresholds, artifacts and encoder checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import shared_encoder

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.embedding import EmbeddingEngine
from labelwise.errors import ModelLoadError, NotFittedError

EXAMPLES = {
    "sports": [
        "The striker scored twice in the final match.",
        "Our team won the championship last night.",
        "He ran the marathon in under three hours.",
        "The goalkeeper saved a penalty in extra time.",
        "The tennis player won her third grand slam title.",
        "Basketball fans cheered as the buzzer sounded.",
    ],
    "money": [
        "The bank raised its interest rates again.",
        "I need a loan to pay for my new apartment.",
        "Stock prices fell sharply this morning.",
        "How much is the fee for an international transfer?",
        "My savings account pays very little interest.",
        "The company reported record quarterly profits.",
    ],
    "weather": [
        "Heavy rain is expected all weekend.",
        "It will be sunny and warm tomorrow.",
        "A snowstorm closed the mountain roads.",
        "Strong winds knocked down trees across the city.",
        "The forecast says thunderstorms in the afternoon.",
        "Temperatures will drop below freezing tonight.",
    ],
}
HELD_OUT = {
    "sports": "The referee showed a red card to the defender.",
    "money": "Should I invest my bonus in bonds or shares?",
    "weather": "Bring an umbrella, showers are coming.",
}

ENCODER = shared_encoder()


def data(per_label: int, start: int = 0) -> LabeledTexts:
    texts = [t for ts in EXAMPLES.values() for t in ts[start : start + per_label]]
    labels: list[tuple[str, ...]] = [(label,) for label, ts in EXAMPLES.items() for _ in ts[start : start + per_label]]
    return LabeledTexts(texts, labels)


@pytest.fixture(scope="module")
def fitted() -> EmbeddingEngine:
    return EmbeddingEngine(encoder=ENCODER, c_grid=(4.0, 16.0)).fit(data(4), data(2, start=4))


def test_probabilities_follow_the_contract(fitted: EmbeddingEngine) -> None:
    proba = fitted.predict_proba(list(HELD_OUT.values()))
    assert proba.shape == (3, 3)
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert fitted.classes_ == ["money", "sports", "weather"]
    assert fitted.task_ is TaskType.SINGLE_LABEL
    assert fitted.thresholds_ is None
    assert fitted.predict(list(HELD_OUT.values())) == [[label] for label in HELD_OUT]


def test_small_validation_falls_back_to_cross_validation(fitted: EmbeddingEngine) -> None:
    params = fitted.get_params()
    assert params["mode"].endswith("cross-validation")
    assert params["C"] in params["c_grid"]
    assert params["encoder"]["model_id"] == "all-MiniLM-L6-v2"
    json.dumps(params)  # JSON-serializable


def test_one_example_per_label_uses_a_fixed_c() -> None:
    engine = EmbeddingEngine(encoder=ENCODER).fit(data(1), LabeledTexts([], []))
    assert engine.get_params()["mode"].startswith("fixed C")
    assert engine.predict(list(HELD_OUT.values())) == [[label] for label in HELD_OUT]


def test_multi_label_gets_independent_scores_and_thresholds() -> None:
    base = data(6)
    labels = [
        (*row, "question") if text.endswith("?") else row for text, row in zip(base.texts, base.labels, strict=True)
    ]
    engine = EmbeddingEngine(encoder=ENCODER, c_grid=(16.0,)).fit(
        LabeledTexts(base.texts, labels), LabeledTexts([], []), multi_label=True
    )
    assert engine.task_ is TaskType.MULTI_LABEL
    assert engine.thresholds_ is not None
    assert engine.thresholds_.shape == (4,)
    proba = engine.predict_proba(["Is it going to snow?", "The match was great."])
    assert proba.shape == (2, 4)
    assert ((proba >= 0) & (proba <= 1)).all()


def test_save_and_load_round_trip(fitted: EmbeddingEngine, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coef.npy", "embedding.json", "intercept.npy"]
    loaded = EmbeddingEngine.load(tmp_path, encoder=ENCODER)
    texts = list(HELD_OUT.values())
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts), atol=1e-12)
    assert loaded.classes_ == fitted.classes_
    assert loaded.get_params() == fitted.get_params()


def test_a_model_from_another_encoder_refuses_to_load(fitted: EmbeddingEngine, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    meta = json.loads((tmp_path / "embedding.json").read_text())
    meta["encoder"]["sha256"] = "0" * 64
    (tmp_path / "embedding.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="encoder"):
        EmbeddingEngine.load(tmp_path, encoder=ENCODER)


def test_corrupt_artifacts_raise_model_load_error(fitted: EmbeddingEngine, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    np.save(tmp_path / "coef.npy", np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ModelLoadError, match="shape"):
        EmbeddingEngine.load(tmp_path, encoder=ENCODER)


def test_unfitted_engine_refuses_to_predict(tmp_path: Path) -> None:
    with pytest.raises(NotFittedError):
        EmbeddingEngine(encoder=ENCODER).predict_proba(["x"])
    with pytest.raises(NotFittedError):
        EmbeddingEngine(encoder=ENCODER).save(tmp_path)
