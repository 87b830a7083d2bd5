"""The abstain rule: when it fires, and how it is tuned for a target precision on validation scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelwise.domain import LabeledTexts
from labelwise.engines.abstain import NEVER, AbstainRule, rule_of, top_two, tune
from labelwise.engines.linear import LinearEngine
from labelwise.errors import InvalidRequest
from labelwise.training.pipeline import tune_abstain


def test_rule_fires_on_low_confidence_or_small_margin() -> None:
    proba = np.array([[0.9, 0.05, 0.05], [0.45, 0.44, 0.11], [0.4, 0.1, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    rule = AbstainRule(min_confidence=0.42, min_margin=0.05)
    assert rule.fires(proba).tolist() == [False, True, False, True]
    assert NEVER.fires(proba).tolist() == [False] * 4
    best, margin = top_two(proba)
    assert best.tolist() == pytest.approx([0.9, 0.45, 0.5, 1 / 3])
    assert margin.tolist() == pytest.approx([0.85, 0.01, 0.1, 0.0])


def test_overrides_replace_one_number_each() -> None:
    rule = AbstainRule(0.6, 0.2)
    assert rule.with_overrides(None, 0.0) == AbstainRule(0.6, 0.0)
    assert rule.with_overrides(0.0, 0.0).never


def test_versions_without_a_rule_never_abstain() -> None:
    assert rule_of({"headline": {"accuracy": 0.9}}) is NEVER
    assert rule_of({"abstain": {"min_confidence": 0.5, "min_margin": 0.1}}) == AbstainRule(0.5, 0.1)


def test_tune_keeps_the_most_rows_that_reach_the_target() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    confidence = rng.uniform(0.4, 1.0, n)  # always the best of the three columns
    # The chance of being right grows with confidence: only the sure rows are precise.
    correct = rng.uniform(0.0, 1.0, n) < confidence
    proba = np.column_stack([confidence, (1 - confidence) * 0.6, (1 - confidence) * 0.4])
    gold = np.where(correct, 0, 1)
    tuned = tune(proba, gold.tolist(), target_precision=0.9)
    assert tuned["reached"]
    assert tuned["precision"] >= 0.9
    assert 0.1 < tuned["coverage"] < 0.9
    kept = ~AbstainRule(tuned["min_confidence"], tuned["min_margin"]).fires(proba)
    assert kept.mean() == pytest.approx(tuned["coverage"], abs=1e-3)
    assert correct[kept].mean() >= 0.9
    # A laxer target keeps more.
    assert tune(proba, gold.tolist(), target_precision=0.7)["coverage"] > tuned["coverage"]
    curve = tuned["curve"]
    assert curve[0]["coverage"] < curve[-1]["coverage"] == 1.0
    assert curve[-1]["precision"] == pytest.approx(correct.mean(), abs=1e-3)


def test_an_unreachable_target_keeps_the_most_precise_useful_rule() -> None:
    proba = np.tile([0.6, 0.4], (100, 1))
    gold = [0] * 50 + [1] * 50
    tuned = tune(proba, gold, target_precision=0.99)
    assert not tuned["reached"]
    assert tuned["coverage"] >= 0.05


@pytest.mark.parametrize("target", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_a_target_outside_zero_one_is_refused_by_name(target: float) -> None:
    with pytest.raises(InvalidRequest, match="target_precision"):
        tune(np.array([[0.5, 0.5]]), [0], target_precision=target)


def test_a_refitting_engine_is_tuned_on_its_held_out_scores(shared_data: Path) -> None:
    """Linear refits on train plus validation, so validation scores after fit are in-sample (nearly all right):
    the rule must come from the scores before the refit, or it would never abstain."""
    rows = [json.loads(line) for line in (shared_data / "trec" / "train.jsonl").read_text().splitlines()[:900]]
    data = LabeledTexts([r["text"] for r in rows], [(r["label"],) for r in rows])
    train, val = LabeledTexts(data.texts[:600], data.labels[:600]), LabeledTexts(data.texts[600:], data.labels[600:])
    engine = LinearEngine(c_grid=(1.0,)).fit(train, val)
    assert engine.heldout_ is not None
    in_sample = engine.predict_proba(val.texts)
    tuned = tune_abstain(engine, val, in_sample, None, 0.95)
    assert tuned is not None
    best = in_sample.argmax(1)
    right_in_sample = np.mean([engine.classes_[int(i)] == g[0] for i, g in zip(best, val.labels, strict=True)])
    assert tuned["precision_all"] < right_in_sample
    assert tuned["coverage"] < 1.0  # held-out precision is under 0.95 on trec: the rule abstains on some
