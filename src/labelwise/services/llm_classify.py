"""Zero-shot classification with a language model: the upstream is asked to choose one label of the set.

The answer is constrained to the label set where the upstream can do it: a JSON schema whose `label` is an enum
of the labels, sent as OpenAI's `response_format: {type: json_schema}` (vLLM, Ollama, hosted APIs); an upstream
that refuses that form is asked again with llama.cpp's `{type: json_object, schema}` (a grammar), and one that
refuses both gets the instruction alone. Whichever form worked is kept for the process. The answer is validated
always: JSON with a `label` from the set, else the one label its text names; an answer naming none predicts
nothing (scores uniform).

Scores come from the token log-probabilities when the upstream returns them (`logprobs`, `top_logprobs`): along
the tokens of the chosen label, each alternative token that continues another label's text gives that label the
probability of the path to it; the chosen label gets the probability of its own tokens, and the scores are then
normalized over the label set. A label whose tokens never appear among the top alternatives scores 0. Without
log-probabilities the chosen label scores 1 and the others 0.

Results are cached per (upstream model, text, labels with descriptions, examples): the same question is not paid
for twice by one process.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from labelwise.domain import ModelVersion, TaskType, Timing
from labelwise.engines.base import predictions_of
from labelwise.errors import InvalidRequest, UpstreamRejected, UpstreamUnavailable
from labelwise.llm.upstream import LLMUpstream
from labelwise.services.classify import Classification, ClassifyService
from labelwise.services.credits import Payer, billed
from labelwise.services.generation import NOT_CONFIGURED
from labelwise.services.zeroshot import check_labels

LLM_ENGINE = "llm"  # the model name in responses and the price-list entry
TOP_LOGPROBS = 10
_FORMATS = ("json_schema", "json_object", "none")
_CONCURRENT = 4  # texts of one request in flight to the upstream at once


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


class LLMClassifier:
    """Classifies texts against a label set with the upstream language model."""

    def __init__(self, upstream: LLMUpstream | None, classify: ClassifyService, *, cache_size: int = 10_000) -> None:
        self.upstream = upstream
        self.classify_service = classify  # for its text limits and billing
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[object, ...], np.ndarray[Any, np.dtype[np.float64]]] = OrderedDict()
        self._format = _FORMATS[0]
        self._created = datetime.now(UTC)

    def _upstream(self) -> LLMUpstream:
        if self.upstream is None:
            raise UpstreamUnavailable(NOT_CONFIGURED)
        return self.upstream

    def model_name(self, model: str | None) -> str:
        name = model or self._upstream().default_model
        if not name:
            raise InvalidRequest("model: name the upstream model; this server has no default", param="model")
        return name

    async def classify(
        self,
        texts: Sequence[str],
        labels: Sequence[tuple[str, str]],
        *,
        param: str = "labels",
        model: str | None = None,
        examples: Sequence[Example] = (),
        top_k: int | None = 3,
        threshold: float = 0.0,
        single: bool = False,
        payer: Payer | None = None,
        record: ModelVersion | None = None,
    ) -> Classification:
        """Like `ClassifyService.classify`, with the language model choosing among `labels`. Billed as `llm`
        per text (a stored `llm` model is billed under its own record's engine, the same)."""
        service = self.classify_service
        service.check_texts(texts, single=single)
        checked = check_labels(labels, param=param)
        if len(checked) < 2:
            raise InvalidRequest(f"{param}: the model needs at least 2 labels to choose from", param=param)
        label_set = LabelSet(checked, tuple(examples))
        upstream_model = self.model_name(model)
        async with billed(service.billing, payer, LLM_ENGINE, texts) as charge:
            proba, seconds = await self.scores(texts, label_set, upstream_model)
        names = label_set.names
        # The best label, except where the answer named none (uniform scores): nothing is predicted then.
        decided = [[] if np.ptp(row) == 0 else [names[int(row.argmax())]] for row in proba]
        predictions = predictions_of(label_set.names, proba, decided, top_k=top_k, threshold=threshold)
        timing = Timing(queue_ms=0.0, inference_ms=seconds * 1000.0)
        return Classification(predictions, record or self.record(label_set, upstream_model), timing, charge)

    def record(self, label_set: LabelSet, upstream_model: str) -> ModelVersion:
        """What responses name as the model: `llm`, versioned by the upstream model."""
        return ModelVersion(
            name=LLM_ENGINE,
            version=upstream_model,
            engine=LLM_ENGINE,
            task=TaskType.SINGLE_LABEL,
            labels=label_set.names,
            created_at=self._created,
            sha256="",
            path="",
        )

    async def scores(
        self, texts: Sequence[str], label_set: LabelSet, model: str
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], float]:
        """Scores (texts, labels), and the seconds spent waiting for the upstream."""
        out = np.zeros((len(texts), len(label_set.labels)), dtype=np.float64)
        semaphore = asyncio.Semaphore(_CONCURRENT)
        spent = 0.0

        async def one(i: int, text: str) -> None:
            nonlocal spent
            key = (model, text, *label_set.key())
            found = self._cache.get(key)
            if found is None:
                async with semaphore:
                    found, seconds = await self._ask(text, label_set, model)
                spent += seconds
                self._cache[key] = found
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            out[i] = found

        await asyncio.gather(*(one(i, text) for i, text in enumerate(texts)))
        return out, spent

    async def _ask(
        self, text: str, label_set: LabelSet, model: str
    ) -> tuple[np.ndarray[Any, np.dtype[np.float64]], float]:
        upstream = self._upstream()
        longest = max(len(name) for name in label_set.labels)
        payload: dict[str, Any] = {
            "model": model,
            "messages": label_set.messages(text),
            "temperature": 0.0,
            "max_tokens": longest + 16,  # a label is never more tokens than characters; plus the JSON around it
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        while True:
            style = self._format
            try:
                result = await upstream.chat({**payload, **_response_format(style, label_set)})
                break
            except UpstreamRejected:
                if style == _FORMATS[-1]:
                    raise
                # This upstream does not take this form of constraint: try the next, and keep it.
                self._format = _FORMATS[_FORMATS.index(style) + 1]
        choices = result.body.get("choices") or [{}]
        logprobs = ((choices[0] or {}).get("logprobs") or {}).get("content")
        return answer_scores(result.text, logprobs, label_set.names), result.seconds


def _response_format(style: str, label_set: LabelSet) -> dict[str, Any]:
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


Scores = np.ndarray[Any, np.dtype[np.float64]]


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
