"""The `auto` engine: fits the candidates, keeps the best on validation, records why, delegates save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import shared_encoder

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.auto import AutoEngine, CombinedEngine
from labelwise.errors import DataError

ROWS = {
    "refund": [
        "I want my money back for this order.",
        "Please refund the item I returned.",
        "How long does a refund take?",
        "The refund has not reached my account yet.",
        "Can I get a refund for a cancelled flight?",
        "Return the payment, the product was broken.",
        "I was promised a refund last week.",
        "Refund me, the parcel never came.",
    ],
    "password": [
        "I forgot my password and cannot log in.",
        "How do I reset my password?",
        "The password reset email never arrives.",
        "My login says the password is wrong.",
        "Change my account password please.",
        "I am locked out after too many password attempts.",
        "Where do I set a new password?",
        "The app keeps rejecting my password.",
    ],
}

ENCODER = shared_encoder()


def split(rows: range) -> LabeledTexts:
    texts = [ts[i] for ts in ROWS.values() for i in rows]
    return LabeledTexts(texts, [(label,) for label in ROWS for _ in rows])


@pytest.fixture(scope="module")
def fitted() -> AutoEngine:
    return AutoEngine(encoder=ENCODER).fit(split(range(5)), split(range(5, 8)))


def test_every_candidate_is_scored_and_the_best_is_kept(fitted: AutoEngine) -> None:
    selection = fitted.get_params()["selection"]
    scores = {name: report["validation_score"] for name, report in selection["candidates"].items()}
    assert set(scores) == {"linear", "embedding", "combined"}
    assert scores[selection["chosen"]] == max(scores.values())
    assert "validation accuracy" in selection["reason"]
    json.dumps(fitted.get_params())


def test_probabilities_follow_the_contract(fitted: AutoEngine) -> None:
    proba = fitted.predict_proba(["Reset my password", "Give me a refund"])
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert fitted.classes_ == ["password", "refund"]
    assert fitted.task_ is TaskType.SINGLE_LABEL


def test_save_and_load_delegate_to_the_chosen_engine(fitted: AutoEngine, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    meta = json.loads((tmp_path / "auto.json").read_text())
    assert meta["chosen"] == fitted.get_params()["selection"]["chosen"]
    loaded = AutoEngine.load(tmp_path, encoder=ENCODER)
    texts = ["Reset my password", "Give me a refund"]
    np.testing.assert_allclose(loaded.predict_proba(texts), fitted.predict_proba(texts), atol=1e-12)
    assert loaded.get_params()["selection"] == fitted.get_params()["selection"]


def test_combined_engine_round_trip(tmp_path: Path) -> None:
    engine = CombinedEngine(encoder=ENCODER, c_grid=(16.0,)).fit(split(range(5)), split(range(5, 8)))
    engine.save(tmp_path)
    loaded = CombinedEngine.load(tmp_path, encoder=ENCODER)
    texts = ["Reset my password", "Give me a refund"]
    np.testing.assert_allclose(loaded.predict_proba(texts), engine.predict_proba(texts), atol=1e-12)
    assert loaded.predict(texts) == [["password"], ["refund"]]


def test_unknown_candidates_are_refused() -> None:
    with pytest.raises(DataError, match="candidates"):
        AutoEngine(encoder=ENCODER, candidates=("bert",)).fit(split(range(5)), split(range(5, 8)))
