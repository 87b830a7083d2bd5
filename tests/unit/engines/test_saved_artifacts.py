"""Models saved before the engine base (artifacts/v1, written by the code of commit cefbb20 from the conformance
suite's synthetic data) load unchanged and give the probabilities and parameters they gave then.

The models that read sentence vectors were trained on the encoder's `int8-rowwise-v2` build; they load with the
current build (a warning says so) and their expected probabilities were recorded again with it
(`proba_encoder_recipe`), because `v2` itself gave different vectors on different CPUs (see encoder/quantize.py).
The current build's integer sums are the same on every x86 CPU, but its float kernels (layer norm, softmax,
GELU) are not bit-identical between AVX2 and AVX-512: those models are compared to 1e-3, the others to 1e-9.
"""

from __future__ import annotations

import json
import logging
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
def test_a_model_saved_by_the_previous_code_loads_and_scores_the_same(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    expected = EXPECTED["engines"][name]
    cls = CLASSES[expected["class"]]
    with caplog.at_level(logging.WARNING, logger="labelwise.engines.base"):
        engine = cls.load(SAVED / name, encoder=shared_encoder())
    reads_vectors = name in {"embedding", "zeroshot", "zeroshot-multi", "combined"}
    assert ("trained on an earlier build of encoder" in caplog.text) is reads_vectors
    tolerance = 1e-3 if cls.needs_encoder else 1e-9
    np.testing.assert_allclose(engine.predict_proba(EXPECTED["texts"]), expected["proba"], rtol=0, atol=tolerance)
    assert json.loads(json.dumps(engine.get_params())) == expected["params"]
