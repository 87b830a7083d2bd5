"""Zero-shot classification as a use case: label sets from a request become cached label scorers.

The scorers are built by the `build` function the composition root gives (the zero-shot engine's `from_labels`,
bound to the process's encoder): this service names no concrete engine. Building one embeds its label texts (once
per label set, then kept in an LRU; the label vectors are also cached per label text inside the engine module).
The texts themselves go through the shared encoder batcher, so concurrent zero-shot requests, and embedding
requests, are encoded together in one call; the scores are then a matrix product with the label vectors,
calibrated for the mode.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import ModelVersion, TaskType, Timing
from labelwise.encoder import MODEL_ID, EncoderBatcher
from labelwise.engines.base import FloatArray, predictions_of
from labelwise.errors import InvalidRequest
from labelwise.services.classify import Classification, ClassifyService
from labelwise.services.credits import Payer, billed

ZEROSHOT_ENGINE = "zeroshot"  # the model name in responses and the price-list entry


class LabelScorer(Protocol):
    """What the service needs of a zero-shot engine: its labels, their vectors, and scores from cosines."""

    classes_: list[str]
    task_: TaskType

    @property
    def label_vectors(self) -> NDArray[np.float32]: ...

    def proba_from_cosine(self, cosine: FloatArray) -> FloatArray: ...

    def decide(self, proba: FloatArray) -> list[list[str]]: ...


class ScorerBuilder(Protocol):
    """Builds the scorer of a label set: names, or {name: description}; `mode` and `threshold` as the engine's."""

    def __call__(self, labels: list[str] | dict[str, str], *, mode: str, threshold: float) -> LabelScorer: ...


@dataclass(frozen=True, slots=True)
class LabelLimits:
    """How many labels a request may name, and how long each name and description may be."""

    max_labels: int = 100
    max_label_chars: int = 100
    max_description_chars: int = 500
    key_pattern: re.Pattern[str] | None = None
    key_rule: str = ""


NATIVE_LIMITS = LabelLimits()


def check_labels(
    items: Sequence[tuple[str, str]], *, param: str, limits: LabelLimits = NATIVE_LIMITS
) -> dict[str, str]:
    """(name, description) pairs as {name: description}; `InvalidRequest` naming the item and the limit when one
    is broken (too many, empty, too long, not matching the key rule, or given twice)."""
    if not items:
        raise InvalidRequest(f"{param}: give at least one label", param=param)
    if len(items) > limits.max_labels:
        raise InvalidRequest(f"{param}: {len(items):,} labels, the limit is {limits.max_labels:,}", param=param)
    out: dict[str, str] = {}
    for i, (name, description) in enumerate(items):
        where = f"{param}[{i}]"
        if not name.strip():
            raise InvalidRequest(f"{where}: must not be empty", param=where)
        if len(name) > limits.max_label_chars:
            raise InvalidRequest(
                f"{where}: {len(name):,} characters, the limit is {limits.max_label_chars:,}", param=where
            )
        if limits.key_pattern is not None and not limits.key_pattern.fullmatch(name):
            raise InvalidRequest(f"{where}: {limits.key_rule}", param=where)
        if len(description) > limits.max_description_chars:
            raise InvalidRequest(
                f"{where}.description: {len(description):,} characters, the limit is {limits.max_description_chars:,}",
                param=f"{where}.description",
            )
        if name in out:
            raise InvalidRequest(f"{where}: {name[:100]!r} is given twice", param=where)
        out[name] = description
    return out


class ZeroShotService:
    """Scores texts against label sets named in the request, with no trained model."""

    def __init__(
        self, batcher: EncoderBatcher, classify: ClassifyService, *, build: ScorerBuilder, cache_size: int = 256
    ) -> None:
        self.batcher = batcher
        self.classify_service = classify  # for its text limits and billing, which zero-shot shares
        self.build = build
        self.cache_size = cache_size
        self._engines: OrderedDict[tuple[object, ...], LabelScorer] = OrderedDict()
        self._created = datetime.now(UTC)

    async def engine(self, labels: Mapping[str, str], *, mode: str, threshold: float = 0.5) -> LabelScorer:
        """The engine for this label set and mode, built on first use and then kept (least recently used goes)."""
        key = (tuple(labels.items()), mode, threshold)
        found = self._engines.get(key)
        if found is not None:
            self._engines.move_to_end(key)
            return found
        # Labels with descriptions are passed as a dict; names alone keep their text template.
        given: list[str] | dict[str, str] = dict(labels) if any(labels.values()) else list(labels)
        # Building embeds the label texts (and loads the encoder the first time): a thread, off the event loop.
        engine = await asyncio.to_thread(self.build, given, mode=mode, threshold=threshold)
        self._engines[key] = engine
        while len(self._engines) > self.cache_size:
            self._engines.popitem(last=False)
        return engine

    async def scores(self, texts: Sequence[str], engine: LabelScorer) -> tuple[FloatArray, Timing]:
        """Scores (texts, labels) in the engine's label order, with the encoder batch's timing."""
        vectors, timing = await self.batcher.embed_timed(texts)
        # float64, as the engine does, so one text scores the same alone or in a batch.
        cosine = vectors.astype(np.float64) @ engine.label_vectors.astype(np.float64).T
        return engine.proba_from_cosine(cosine), timing

    def record(self, engine: LabelScorer) -> ModelVersion:
        """What responses name as the model: `zeroshot`, versioned by the encoder."""
        return ModelVersion(
            name=ZEROSHOT_ENGINE,
            version=MODEL_ID,
            engine=ZEROSHOT_ENGINE,
            task=engine.task_,
            labels=list(engine.classes_),
            created_at=self._created,
            sha256="",
            path="",
        )

    async def classify(
        self,
        texts: Sequence[str],
        labels: Sequence[tuple[str, str]],
        *,
        param: str = "labels",
        limits: LabelLimits = NATIVE_LIMITS,
        mode: str = "exclusive",
        top_k: int | None = 3,
        threshold: float = 0.0,
        decision_threshold: float = 0.5,
        single: bool = False,
        payer: Payer | None = None,
    ) -> Classification:
        """Like `ClassifyService.classify`, against `labels` ((name, description) pairs, checked against `limits`;
        errors name `param`).

        `mode` is the engine's (`exclusive`: scores sum to 1; `multi_label`/`confidence`: independent scores, a
        label is predicted at or over `decision_threshold`; `binary`: 0 or 1). Billed as engine "zeroshot".
        """
        service = self.classify_service
        service.check_texts(texts, single=single)
        checked = check_labels(labels, param=param, limits=limits)
        if mode == "exclusive" and len(checked) < 2:
            raise InvalidRequest(f"{param}: exclusive scores need at least 2 labels", param=param)
        engine = await self.engine(checked, mode=mode, threshold=decision_threshold)
        async with billed(service.billing, payer, ZEROSHOT_ENGINE, texts) as charge:
            proba, timing = await self.scores(texts, engine)
        decided = engine.decide(proba)
        predictions = predictions_of(engine.classes_, proba, decided, top_k=top_k, threshold=threshold)
        return Classification(predictions, self.record(engine), timing, charge)
