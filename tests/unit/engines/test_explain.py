"""Explanations follow the engine's `explanation` capability, asked of the engine that explains its scores."""

from __future__ import annotations

import pytest
from tests.conftest import shared_encoder
from tests.unit.engines.test_engine_conformance import single_label_data

from labelwise.engines.auto import AutoEngine
from labelwise.engines.base import Engine
from labelwise.engines.explain import explain
from labelwise.engines.linear import LinearEngine
from labelwise.engines.zeroshot import ZeroShotEngine

TEXT = "the striker scored a goal for the team"


@pytest.fixture(scope="module")
def auto_linear() -> AutoEngine:
    """An `auto` model whose chosen candidate is linear (the only one it may choose here)."""
    return AutoEngine(candidates=("linear",)).fit(single_label_data(90, 1), single_label_data(60, 2))


def test_an_auto_model_with_a_linear_winner_gets_the_linear_method(auto_linear: AutoEngine) -> None:
    assert auto_linear.get_params()["selection"]["chosen"] == "linear"
    assert isinstance(auto_linear.explainer(), LinearEngine)
    explanations = explain(auto_linear, TEXT, ["sport"])
    assert [e.method for e in explanations] == ["linear"]
    # The same terms and weights as explaining the chosen linear engine itself.
    assert explanations == explain(auto_linear.explainer(), TEXT, ["sport"])
    assert "goal" in [t.term for t in explanations[0].terms]


def test_engines_declare_their_method() -> None:
    assert LinearEngine.explanation == "linear"
    assert ZeroShotEngine.explanation == "leave_one_out"
    assert AutoEngine.explanation == "leave_one_out"  # unless its chosen candidate says otherwise


def test_other_engines_leave_words_out() -> None:
    engine: Engine = ZeroShotEngine.from_labels(["sport", "food"], encoder=shared_encoder())
    (explanation,) = explain(engine, TEXT, ["sport"])
    assert explanation.method == "leave_one_out"


def test_an_engine_without_feature_weights_says_so() -> None:
    with pytest.raises(NotImplementedError, match="ZeroShotEngine"):
        ZeroShotEngine.from_labels(["sport", "food"], encoder=shared_encoder()).feature_weights()
