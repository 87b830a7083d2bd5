"""Reading a language model's answer: the label it chose, validated against the set, and scores from its token
log-probabilities (llama.cpp's and OpenAI's `logprobs.content` shape)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelwise.llm.prompting import LabelSet, answer_scores, chosen_label

NAMES = ["sport", "science", "politics"]


def _token(text: str, p: float, alternatives: dict[str, float] | None = None) -> dict[str, object]:
    top = [{"token": text, "logprob": math.log(p)}]
    top += [{"token": t, "logprob": math.log(q)} for t, q in (alternatives or {}).items()]
    return {"token": text, "logprob": math.log(p), "top_logprobs": top}


def test_the_answer_is_validated_against_the_label_set() -> None:
    assert chosen_label('{"label": "science"}', NAMES) == "science"
    assert chosen_label('{"label": "cooking"}', NAMES) is None
    assert chosen_label("I think it is politics.", NAMES) == "politics"
    assert chosen_label("sport or science", NAMES) is None  # two labels named: no answer
    assert chosen_label("", NAMES) is None


def test_scores_follow_the_token_probabilities() -> None:
    # {"label": "s|cience"}: at the label's first token the model hesitated between "s" (science, sport) and
    # "pol"; after "s", between "cience" and "port".
    tokens = [
        _token('{"', 1.0),
        _token("label", 1.0),
        _token('":', 1.0),
        _token(' "', 1.0),
        _token("s", 0.8, {"pol": 0.2}),
        _token("cience", 0.75, {"port": 0.25}),
        _token('"}', 1.0),
    ]
    scores = answer_scores('{"label": "science"}', tokens, NAMES)
    np.testing.assert_allclose(scores, [0.8 * 0.25, 0.8 * 0.75, 0.2])
    assert scores.sum() == pytest.approx(1.0)


def test_without_logprobs_the_choice_scores_one_and_no_choice_is_uniform() -> None:
    np.testing.assert_allclose(answer_scores('{"label": "sport"}', None, NAMES), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(answer_scores("no idea", None, NAMES), [1 / 3] * 3)


def test_prompt_and_schema_carry_labels_descriptions_and_examples() -> None:
    from labelwise.llm.prompting import Example

    label_set = LabelSet({"sport": "games and matches", "science": ""}, (Example("the match", "sport"),))
    messages = label_set.messages("a new comet")
    assert "- sport: games and matches\n- science" in messages[0]["content"]
    assert messages[1:] == [
        {"role": "user", "content": "Text: the match"},
        {"role": "assistant", "content": '{"label":"sport"}'},
        {"role": "user", "content": "Text: a new comet"},
    ]
    assert label_set.schema()["properties"]["label"]["enum"] == ["sport", "science"]
