"""Zero-shot classification with a language model: the upstream is asked to choose one label of the set (how it
is asked and how its answer is read: llm/prompting.py).

Results are cached per (upstream model, text, labels with descriptions, examples): the same question is not paid
for twice by one process.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from labelwise.domain import ModelVersion, TaskType, Timing
from labelwise.engines.base import predictions_of
from labelwise.errors import InvalidRequest, UpstreamRejected
from labelwise.inference.manager import LoadedModel
from labelwise.llm.prompting import FORMATS, Example, LabelSet, Scores, request, scores_of
from labelwise.llm.upstream import LLMUpstream
from labelwise.services.classify import Classification, ClassifyService
from labelwise.services.credits import Payer, billed
from labelwise.services.generation import required_upstream, upstream_model
from labelwise.services.zeroshot import check_labels

LLM_ENGINE = "llm"  # the model name in responses and the price-list entry
_CONCURRENT = 4  # texts of one request in flight to the upstream at once


class LLMClassifier:
    """Classifies texts against a label set with the upstream language model."""

    def __init__(self, upstream: LLMUpstream | None, classify: ClassifyService, *, cache_size: int = 10_000) -> None:
        self.upstream = upstream
        self.classify_service = classify  # for its text limits and billing
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[object, ...], Scores] = OrderedDict()
        self._format = FORMATS[0]
        self._created = datetime.now(UTC)

    def _upstream(self) -> LLMUpstream:
        return required_upstream(self.upstream)

    def model_name(self, model: str | None) -> str:
        return upstream_model(self.upstream, model)

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

    async def scores(self, texts: Sequence[str], label_set: LabelSet, model: str) -> tuple[Scores, float]:
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

    async def _ask(self, text: str, label_set: LabelSet, model: str) -> tuple[Scores, float]:
        upstream = self._upstream()
        while True:
            style = self._format
            try:
                result = await upstream.chat(request(text, label_set, model, style))
                break
            except UpstreamRejected:
                if style == FORMATS[-1]:
                    raise
                # This upstream does not take this form of constraint: try the next, and keep it.
                self._format = FORMATS[FORMATS.index(style) + 1]
        return scores_of(result.body, label_set.names), result.seconds

    async def stored(
        self,
        texts: Sequence[str],
        loaded: LoadedModel,
        *,
        top_k: int | None,
        threshold: float,
        single: bool,
        payer: Payer | None,
    ) -> Classification:
        """Classify with a stored `llm` model version: its labels, descriptions, examples and upstream model."""
        engine: Any = loaded.engine  # an LLMEngine (engines/llm.py), by its record's engine name
        labels = [(name, engine.descriptions_.get(name, "")) for name in engine.classes_]
        return await self.classify(
            texts,
            labels,
            model=engine.model_,
            examples=engine.examples_,
            top_k=top_k,
            threshold=threshold,
            single=single,
            payer=payer,
            record=loaded.record,
        )
