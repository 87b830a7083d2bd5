"""The classify use case: check the input against the limits, pick the model, bill, score, rank and decide."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from labelwise.domain import ModelVersion, Prediction, Timing, share_of
from labelwise.engines.abstain import AbstainRule, rule_of
from labelwise.engines.base import FloatArray, predictions_of
from labelwise.engines.explain import Explanation, explain
from labelwise.errors import InputTooLong, InvalidRequest, ModelNotFound
from labelwise.inference.manager import LoadedModel, ModelManager
from labelwise.services.credits import Billing, Charge, Payer, billed


@dataclass(frozen=True, slots=True)
class Classification:
    """Predictions in input order, the version that made them, where the time went, and what it cost."""

    predictions: list[Prediction]
    model: ModelVersion
    timing: Timing
    charge: Charge | None = None


class Delegate(Protocol):
    """Classifies for one engine in place of the batcher (see `ClassifyService.delegate`)."""

    def __call__(
        self,
        texts: Sequence[str],
        loaded: LoadedModel,
        *,
        top_k: int | None,
        threshold: float,
        single: bool,
        payer: Payer | None,
    ) -> Awaitable[Classification]: ...


@dataclass(frozen=True, slots=True)
class ClassifyLimits:
    max_text_chars: int
    max_batch_texts: int


class ClassifyService:
    """Classifies texts with a named model, or the default one, through the model manager."""

    def __init__(
        self,
        manager: ModelManager,
        limits: ClassifyLimits,
        *,
        default_model: str | None = None,
        billing: Billing | None = None,
        canary_share: float = 0.0,
    ) -> None:
        self.manager = manager
        self.limits = limits
        self.default_model = default_model
        self.billing = billing
        self.canary_share = canary_share
        self._delegates: dict[str, Delegate] = {}

    def delegate(self, engine: str, classify: Delegate) -> None:
        """Let `classify` answer for versions of `engine` instead of the batcher: an engine whose scoring is
        I/O (the `llm` engine asks an upstream) is awaited, never run on the event loop."""
        self._delegates[engine] = classify

    async def classify(
        self,
        texts: Sequence[str],
        *,
        model: str | None = None,
        top_k: int | None = 3,
        threshold: float = 0.0,
        single: bool = False,
        payer: Payer | None = None,
        request_id: str | None = None,
        min_confidence: float | None = None,
        min_margin: float | None = None,
    ) -> Classification:
        """Scores for each text: the `top_k` best labels at or over `threshold`, and the model's own decision.

        A bare model name is served by `name@canary` for a `canary_share` of request ids (decided by a hash of
        the id, so a retried request lands on the same version), when that alias exists.

        Error messages name the field as the native API does: `text` when `single`, else `texts` and `texts[i]`.
        With a `payer`, the texts are billed after the input is checked and the model resolved (bad input costs
        nothing) and before inference; a failure from then on refunds them (`InsufficientBalance` if unpaid).

        The version's abstain rule (`min_confidence`, `min_margin` override its numbers) empties the decision of
        a text it is not sure enough about and marks it `abstained`; the ranked scores stay.
        """
        self.check_texts(texts, single=single)
        loaded = await self.manager.get(self._canary(self.model_ref(model), request_id))
        delegate = self._delegates.get(loaded.record.engine)
        if delegate is not None:
            return await delegate(texts, loaded, top_k=top_k, threshold=threshold, single=single, payer=payer)
        async with billed(self.billing, payer, loaded.record.engine, texts) as charge:
            rule = rule_of(loaded.record.metrics).with_overrides(min_confidence, min_margin)
            predictions, timing = await _predict(loaded, texts, top_k, threshold, rule)
        return Classification(predictions, loaded.record, timing, charge)

    async def explain(
        self, text: str, classification: Classification, labels: Sequence[str], *, max_terms: int = 5
    ) -> list[Explanation]:
        """Per label, the terms of `text` that raised its score most, from the version that classified it."""
        loaded = await self.manager.get(classification.model.ref)
        return await asyncio.to_thread(explain, loaded.engine, text, labels, max_terms=max_terms)

    def _canary(self, ref: str, request_id: str | None) -> str:
        if self.canary_share <= 0.0 or request_id is None or any(c in ref for c in "@:"):
            return ref
        if not any("canary" in v.aliases for v in self.manager.models().get(ref, [])):
            return ref
        return f"{ref}@canary" if share_of(request_id) < self.canary_share else ref

    def cost(self, engine: str, texts: int) -> int:
        """Credits that `texts` texts cost on `engine` (0 when billing is off)."""
        return self.billing.cost(engine, texts) if self.billing is not None else 0

    def check_texts(self, texts: Sequence[str], *, single: bool = False) -> None:
        """The native API's limits, naming its fields: `text`, or `texts` and `texts[i]`."""
        limits = self.limits
        check_texts(
            texts,
            param="text" if single else "texts",
            max_texts=limits.max_batch_texts,
            max_chars=limits.max_text_chars,
            index_one=not single,
        )

    def model_ref(self, model: str | None) -> str:
        """The reference to use: the one given, else the configured default, else the only model there is."""
        if model:
            return model
        if self.default_model:
            return self.default_model
        names = sorted(self.manager.models())
        if len(names) == 1:
            return names[0]
        if not names:
            raise ModelNotFound("model: no model has been published yet; train one first", param="model")
        shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
        raise InvalidRequest(
            f"model: {len(names)} models exist and no default is configured; name one of {shown}", param="model"
        )


def check_texts(
    texts: Sequence[str], *, param: str, max_texts: int, max_chars: int, index_one: bool = True, noun: str = "texts"
) -> None:
    """`InvalidRequest` naming the field for an empty or oversized list, or an empty or too long text.

    Items are named `param[i]`; a lone text is named `param` unless `index_one` (the native batch calls it
    `texts[0]`, vLLM and OpenAI call it `input`). `noun` is what the list's limit counts (`texts`, `items`).
    """
    if not texts:
        raise InvalidRequest(f"{param}: at least one text is needed", param=param)
    if len(texts) > max_texts:
        raise InvalidRequest(f"{param}: {len(texts):,} {noun}, the limit is {max_texts:,}", param=param)
    indexed = index_one or len(texts) > 1
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            name = f"{param}[{i}]" if indexed else param
            raise InputTooLong(
                f"{name}: {len(text):,} characters, the limit is {max_chars:,}", param=name, limit=max_chars
            )
        if not text:
            name = f"{param}[{i}]" if indexed else param
            raise InvalidRequest(f"{name}: must not be empty", param=name)


async def _predict(
    loaded: LoadedModel, texts: Sequence[str], top_k: int | None, threshold: float, rule: AbstainRule
) -> tuple[list[Prediction], Timing]:
    proba, timing = await loaded.predict_proba(texts)
    engine = loaded.engine
    decided = engine.decide(proba)
    predictions = predictions_of(engine.classes_, proba, decided, top_k=top_k, threshold=threshold)
    return abstain_where(rule, proba, predictions), timing


def abstain_where(rule: AbstainRule, proba: FloatArray, predictions: list[Prediction]) -> list[Prediction]:
    """`predictions` with the decision emptied and `abstained` set on the rows where `rule` fires."""
    if rule.never:
        return predictions
    return [
        Prediction(p.labels, [], True) if fired else p
        for p, fired in zip(predictions, rule.fires(proba).tolist(), strict=True)
    ]
