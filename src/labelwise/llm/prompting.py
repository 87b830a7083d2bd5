"""What a language model is asked to classify a text, and how its answer is read: pure functions, no I/O.

Shared by the server (services/llm_classify.py, asynchronous, cached) and the stored `llm` engine
(engines/llm.py, which `labelwise eval` and training call synchronously).

The answer is constrained to the label set where the upstream can do it: a JSON schema whose `label` is an enum
of the labels, sent as OpenAI's `response_format: {type: json_schema}` (vLLM, Ollama, hosted APIs); an upstream
that refuses that form is asked again with llama.cpp's `{type: json_object, schema}` (a grammar), and one that
refuses both gets the instruction alone (`FORMATS`, in order). The answer is validated always: JSON with a
`label` from the set, else the one label its text names; an answer naming none predicts nothing (scores
uniform).

Scores come from the token log-probabilities when the upstream returns them (`logprobs`, `top_logprobs`): along
the tokens of the chosen label, each alternative token that continues another label's text gives that label the
probability of the path to it; the chosen label gets the probability of its own tokens, and the scores are then
normalized over the label set. A label whose tokens never appear among the top alternatives scores 0. Without
log-probabilities the chosen label scores 1 and the others 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

TOP_LOGPROBS = 10
FORMATS = ("json_schema", "json_object", "none")
Scores = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True, slots=True)
class Example:
    """A few-shot example: a text and its label."""

    text: str
    label: str


@dataclass(frozen=True, slots=True)
class LabelSet:
    """What the model chooses among: labels with descriptions, and optional few-shot examples."""

    labels: Mapping[str, str]
    examples: tuple[Example, ...] = ()

    @property
    def names(self) -> list[str]:
        return list(self.labels)

    def key(self) -> tuple[object, ...]:
        return (tuple(self.labels.items()), self.examples)

    def messages(self, text: str) -> list[dict[str, str]]:
        lines = [f"- {name}: {desc}" if desc else f"- {name}" for name, desc in self.labels.items()]
        system = (
            "You classify texts. Choose the one label that fits the text best from this list:\n"
            + "\n".join(lines)
            + '\nAnswer with JSON only: {"label": "<one label from the list>"}.'
        )
        messages = [{"role": "system", "content": system}]
        for example in self.examples:
            messages.append({"role": "user", "content": f"Text: {example.text}"})
            messages.append({"role": "assistant", "content": orjson.dumps({"label": example.label}).decode()})
        messages.append({"role": "user", "content": f"Text: {text}"})
        return messages

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": self.names}},
            "required": ["label"],
            "additionalProperties": False,
        }


def response_format(style: str, label_set: LabelSet) -> dict[str, Any]:
    if style == "json_schema":
        schema = {"name": "label", "schema": label_set.schema(), "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    if style == "json_object":
        return {"response_format": {"type": "json_object", "schema": label_set.schema()}}
    return {}


def chosen_label(content: str, names: Sequence[str]) -> str | None:
    """The label an answer names: JSON `{"label": ...}` from the set, else the one label its text contains."""
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("label") in names:
        return str(parsed["label"])
    lowered = content.lower()
    named = [n for n in names if re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered)]
    return named[0] if len(named) == 1 else None


def answer_scores(content: str, logprobs: object, names: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """One text's scores over `names` from the answer and, when given, its tokens' log-probabilities."""
    scores = np.zeros(len(names), dtype=np.float64)
    chosen = chosen_label(content, names)
    if chosen is None:
        scores[:] = 1.0 / len(names)
        return scores
    index = names.index(chosen)
    scores[index] = 1.0
    tokens = logprobs if isinstance(logprobs, list) else None
    start = _label_start(content, chosen)
    if not tokens or start is None:
        return scores
    mass = _label_mass(tokens, start, chosen, names)
    if mass[index] <= 0:
        return scores
    normalized: Scores = mass / mass.sum()
    return normalized


def _label_start(content: str, label: str) -> int | None:
    """Where the label's text starts in the answer (inside the JSON string when there is one)."""
    quoted = orjson.dumps(label).decode()
    at = content.find(quoted)
    if at >= 0:
        return at + 1
    at = content.find(label)
    return at if at >= 0 else None


def _label_mass(tokens: list[Any], start: int, chosen: str, names: Sequence[str]) -> Scores:
    """Probability of each label along the answer's tokens: the chosen label's own path, and for each other label
    the path up to where an alternative token turns towards it."""
    mass = np.zeros(len(names), dtype=np.float64)
    path = 0.0  # log-probability of the chosen tokens so far, from the label's start
    offset = 0  # characters of the answer before the current token
    end = start + len(chosen)
    for token in tokens:
        if not isinstance(token, dict):
            return mass
        text = str(token.get("token", ""))
        if offset + len(text) <= start:
            offset += len(text)
            continue
        if offset >= end:
            break
        head = max(0, start - offset)  # the part of this token before the label begins
        written = chosen[: max(0, offset - start)]  # the label's text before this token
        for alternative in token.get("top_logprobs") or []:
            alt = str(alternative.get("token", ""))
            if alt == text or alt[:head] != text[:head]:
                continue
            candidate = written + alt[head:]
            matches = [i for i, n in enumerate(names) if n != chosen and _continues(candidate, n)]
            for i in matches:
                mass[i] += math.exp(path + float(alternative.get("logprob", -math.inf))) / len(matches)
        path += float(token.get("logprob", 0.0))
        offset += len(text)
    mass[list(names).index(chosen)] = math.exp(path)
    return mass


def _continues(candidate: str, name: str) -> bool:
    """The text written so far leads to `name` (or is all of it, closing quote included)."""
    return bool(candidate) and (name.startswith(candidate) or candidate.startswith(name + '"'))


def request(text: str, label_set: LabelSet, model: str, style: str) -> dict[str, Any]:
    """The chat request that asks `model` to classify `text`, constrained in `style` (one of `FORMATS`)."""
    longest = max(len(name) for name in label_set.labels)
    payload: dict[str, Any] = {
        "model": model,
        "messages": label_set.messages(text),
        "temperature": 0.0,
        "max_tokens": longest + 16,  # a label is never more tokens than characters; plus the JSON around it
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
    }
    return {**payload, **response_format(style, label_set)}


def scores_of(body: Mapping[str, Any], names: Sequence[str]) -> Scores:
    """One text's scores from the upstream's chat completion."""
    choices = body.get("choices") or [{}]
    first = choices[0] or {}
    content = (first.get("message") or {}).get("content")
    logprobs = (first.get("logprobs") or {}).get("content")
    return answer_scores(content if isinstance(content, str) else "", logprobs, names)
