"""Models saved before the engine base (artifacts/v1, written by the code of commit cefbb20 from the conformance
suite's synthetic data) load unchanged and give the probabilities and parameters they gave then."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import shared_encoder

from labelwise.engines.auto import AutoEngine, CombinedEngine
from labelwise.engines.base import Engine
from labelwise.engines.embedding import EmbeddingEngine
from labelwise.engines.linear import LinearEngine
from labelwise.engines.zeroshot import ZeroShotEngine

SAVED = Path(__file__).parent / "artifacts" / "v1"
EXPECTED = json.loads((SAVED / "expected.json").read_text(encoding="utf-8"))
CLASSES: dict[str, type[Engine]] = {
    cls.__name__: cls for cls in (LinearEngine, EmbeddingEngine, ZeroShotEngine, CombinedEngine, AutoEngine)
}


@pytest.mark.parametrize("name", sorted(EXPECTED["engines"]))
def test_a_model_saved_by_the_previous_code_loads_and_scores_the_same(name: str) -> None:
    expected = EXPECTED["engines"][name]
    engine = CLASSES[expected["class"]].load(SAVED / name, encoder=shared_encoder())
    np.testing.assert_allclose(engine.predict_proba(EXPECTED["texts"]), expected["proba"], rtol=0, atol=1e-9)
    assert json.loads(json.dumps(engine.get_params())) == expected["params"]
