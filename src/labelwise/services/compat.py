"""The use cases behind the compatible surfaces (categories API, labels API, vLLM `/classify`), on top of the
classify and zero-shot services: only limits, score shapes and label order differ from the native API.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from labelwise.domain import TaskType
from labelwise.errors import InputTooLong, InvalidRequest
from labelwise.services.classify import Classification, ClassifyService, check_texts
from labelwise.services.credits import Payer
from labelwise.services.zeroshot import LabelLimits, ZeroShotService, check_labels

CATEGORY_LIMITS = LabelLimits(
    max_labels=25,
    max_label_chars=25,
    max_description_chars=150,
    key_pattern=re.compile(r"[A-Za-z0-9 ]+"),
    key_rule="use letters, digits and spaces only",
)
CATEGORY_TEXT_CHARS = 2000
CATEGORY_MODES = {"exclusive": "exclusive", "confidence": "confidence", "binary": "binary"}


@dataclass(frozen=True, slots=True)
class CategoryScores:
    """Scores by category key (in the request's order), what the request cost, and the classification behind."""

    scores: dict[str, float]
    cost: int
    classification: Classification


@dataclass(frozen=True, slots=True)
class LabelOrderScores:
    """A classification with, per text, every label's score in the model's label order (vLLM's `probs`)."""

    classification: Classification
    probs: list[list[float]]
    words: int


# The log of the smallest positive float: the raw score of a probability of exactly 0 (JSON has no infinity).
_LOG_OF_ZERO = math.log(5e-324)


def raw_scores(probs: Sequence[float], *, multi_label: bool) -> list[float]:
    """vLLM's scores without the activation (`use_activation: false`), defined for calibrated models as the
    scores whose activation gives the probabilities back: natural-log probabilities for a single-label model
    (their softmax is `probs`), log-odds for a multi-label one (their sigmoid is `probs`). A probability of
    exactly 0 (or 1) gets the log of the smallest float instead of an infinity."""

    def log(p: float) -> float:
        return math.log(p) if p > 0.0 else _LOG_OF_ZERO

    if multi_label:
        return [log(p) - log(1.0 - p) for p in probs]
    return [log(p) for p in probs]


class CompatService:
    """Categories, labels and vLLM requests, answered by the classify and zero-shot services."""

    def __init__(self, classify: ClassifyService, zeroshot: ZeroShotService) -> None:
        self.classify_service = classify
        self.zeroshot = zeroshot

    async def categories(
        self,
        text: str,
        categories: Sequence[tuple[str, str]],
        *,
        kind: str,
        threshold: float | None = None,
        model: str | None = None,
        payer: Payer | None = None,
    ) -> CategoryScores:
        """Each category's score for `text`: zero-shot, or a trained `model` whose labels are the keys.

        `threshold` drops categories scoring under it; for `binary` it is the cut for 1 instead (default 0.5).
        """
        if len(text) > CATEGORY_TEXT_CHARS:
            raise InputTooLong(
                f"text: {len(text):,} characters, the limit is {CATEGORY_TEXT_CHARS:,}",
                param="text",
                limit=CATEGORY_TEXT_CHARS,
            )
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise InvalidRequest(f"threshold: {threshold}, must be between 0 and 1", param="threshold")
        checked = check_labels(categories, param="categories", limits=CATEGORY_LIMITS)
        cut = 0.5 if threshold is None else threshold
        if model is None:
            result = await self.zeroshot.classify(
                [text], list(checked.items()), param="categories", mode=CATEGORY_MODES[kind], top_k=None,
                decision_threshold=cut, single=True, payer=payer,
            )  # fmt: skip
        else:
            result = await self._trained(text, list(checked), model, payer)
        found = {s.label: s.score for s in result.predictions[0].labels}
        if kind == "binary":
            scores = {key: float(found[key] >= cut) if model else found[key] for key in checked}
        else:
            scores = {key: found[key] for key in checked if threshold is None or found[key] >= threshold}
        engine = result.model.engine
        cost = result.charge.cost if result.charge is not None else self.classify_service.cost(engine, 1)
        return CategoryScores(scores, cost, result)

    async def _trained(self, text: str, keys: list[str], model: str, payer: Payer | None) -> Classification:
        service = self.classify_service
        service.check_texts([text], single=True)
        loaded = await service.manager.get(service.model_ref(model))
        if sorted(loaded.record.labels) != sorted(keys):
            raise InvalidRequest(
                f"categories: the keys must be the labels of model {model[:200]!r} "
                f"({', '.join(loaded.record.labels[:25])})",
                param="categories",
            )
        return await service.classify([text], model=loaded.record.ref, top_k=None, single=True, payer=payer)

    async def labels(
        self, text: str, labels: Sequence[str], *, multi_class: bool = False, payer: Payer | None = None
    ) -> Classification:
        """Every label with its zero-shot score, best first (independent scores when `multi_class`)."""
        return await self.zeroshot.classify(
            [text], [(label, "") for label in labels], mode="multi_label" if multi_class else "exclusive",
            top_k=None, single=True, payer=payer,
        )  # fmt: skip

    async def label_order(
        self,
        texts: Sequence[str],
        *,
        model: str | None,
        truncate_words: int | None = None,
        raw: bool = False,
        payer: Payer | None = None,
        request_id: str | None = None,
    ) -> LabelOrderScores:
        """Scores of `texts` by a trained model, each row in the model's label order.

        Tokens are whitespace-separated words (the engines have no tokenizer of their own): `truncate_words` keeps
        the first N of each text, -1 keeps up to the model's window (`token_window`), more than the window is an
        error. `raw` gives the scores before the activation instead of probabilities (see `raw_scores`).
        """
        limits = self.classify_service.limits
        check_texts(
            texts, param="input", max_texts=limits.max_batch_texts, max_chars=limits.max_text_chars, index_one=False
        )
        if truncate_words is not None:
            window = self.token_window()
            if truncate_words > window:
                raise InvalidRequest(
                    f"truncate_prompt_tokens: {truncate_words:,}, more than the model's window of {window:,} tokens "
                    "(words; -1 means the whole window)",
                    param="truncate_prompt_tokens",
                )
            keep = window if truncate_words == -1 else truncate_words
            texts = [" ".join(t.split()[:keep]) or t for t in texts]
        result = await self.classify_service.classify(
            texts, model=model, top_k=None, payer=payer, request_id=request_id
        )
        order = result.model.labels
        probs = []
        for prediction in result.predictions:
            by_label = {s.label: s.score for s in prediction.labels}
            row = [by_label[label] for label in order]
            probs.append(raw_scores(row, multi_label=result.model.task is TaskType.MULTI_LABEL) if raw else row)
        return LabelOrderScores(result, probs, sum(len(t.split()) for t in texts))

    def token_window(self) -> int:
        """The most tokens (words) a text may have: what the longest text accepted, `max_text_chars`, can hold."""
        return (self.classify_service.limits.max_text_chars + 1) // 2
