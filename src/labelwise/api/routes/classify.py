"""`POST /v1/classify` and `POST /v1/batch`: the native classification routes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.background import BackgroundTask

from labelwise.api.access import requires
from labelwise.api.deps import container_of, payer_of
from labelwise.api.respond import Served, json_response
from labelwise.api.routing import DirectJSONRoute
from labelwise.api.schemas.classify import (
    BatchRequest,
    BatchResponse,
    ClassifyOptions,
    ClassifyRequest,
    ClassifyResponse,
    Explanation,
    ExplanationTerm,
)
from labelwise.api.schemas.errors import error_responses
from labelwise.domain import Prediction
from labelwise.engines.abstain import NEVER
from labelwise.monitoring.service import Monitoring
from labelwise.services.classify import Classification, ClassifyService
from labelwise.services.credits import Payer
from labelwise.services.keys import Scope
from labelwise.services.llm_classify import LLMClassifier
from labelwise.services.zeroshot import ZeroShotService


@dataclass(frozen=True, slots=True)
class _Context:
    """What the classify routes need, read from the app's container and the request: no FastAPI dependency, whose
    solving cost about a tenth of a one-text request."""

    service: ClassifyService
    zeroshot: ZeroShotService
    llm: LLMClassifier
    monitoring: Monitoring
    payer: Payer | None
    request_id: str

    @classmethod
    def of(cls, request: Request) -> _Context:
        container = container_of(request)
        return cls(
            container.classify,
            container.zeroshot,
            container.llm_classifier,
            container.monitoring,
            payer_of(request),
            request.state.request_id,
        )


router = APIRouter(
    prefix="/v1",
    tags=["classify"],
    responses=error_responses(400, 401, 402, 403, 404, 413, 429, 500, 503),
    route_class=DirectJSONRoute,
)


@router.post("/classify", response_model=ClassifyResponse)
@requires(Scope.CLASSIFY)
async def classify(body: ClassifyRequest, request: Request) -> Response:
    """Classify one text with a model (`name`, `name@alias` or `name:version`; default: the default model).

    Returns the `top_k` best labels at or over `threshold`, best first, and `predicted`, the model's own decision.
    Each version carries an abstain rule tuned when it was trained: when its best label scores under the rule's
    `min_confidence` or leads the second by less than its `min_margin`, `predicted` is empty and `abstained` true
    (the labels are still ranked). `min_confidence` and `min_margin` in the request replace the version's numbers;
    `0` for both never abstains.
    Concurrent requests are scored together in one engine call; the `x-queue-time` and `x-inference-time` headers
    say how many milliseconds this request waited for that call and how long the call took. `x-credits-cost` says
    what the request cost, `x-credits-remaining` the key's balance after it (absent for an unlimited key).

    Zero-shot: send `labels` (names) or `categories` (`[{key, description}]`, up to 100) and no `model`; the
    text is scored by its similarity to each label with the sentence encoder, no training needed. Scores sum to 1
    unless `multi_label: true` (independent scores, every label at 0.5 or more predicted). The response names the
    model `zeroshot` and, as its version, the encoder. Example: `{"text": "The striker scored twice", "labels":
    ["sports", "cooking", "finance"]}` -> `{"labels": [{"label": "sports", "score": 0.93}, ...], "predicted":
    ["sports"], "model": "zeroshot", "model_version": "all-MiniLM-L6-v2", ...}`. With `"method": "llm"` the
    language model behind the server chooses the label instead (answer constrained to the labels; scores from
    its token log-probabilities; billed as engine `llm`).

    `explain: true` adds, per returned label, the words or n-grams of the text that raised its score most. Cost:
    for a linear model about one more prediction (tf-idf value x coefficient per feature, credited back to the
    words); for other engines leave-one-word-out, one engine call on up to 65 variants of the text (its first 64
    words left out in turn), so tens of times the cost of the classification itself.
    """
    body.refuse_unavailable()
    ctx = _Context.of(request)
    result = await _classify(body, [body.text], ctx, single=True)
    prediction = result.predictions[0]
    explanations = None
    if body.explain:
        found = await ctx.service.explain(body.text, result, [s.label for s in prediction.labels])
        explanations = [
            Explanation(
                label=e.label, method=e.method, terms=[ExplanationTerm(term=t.term, weight=t.weight) for t in e.terms]
            ).model_dump()
            for e in found
        ]
    payload = {
        "labels": _label_dicts(prediction),
        "predicted": prediction.predicted,
        "abstained": prediction.abstained,
        "top_k": body.top_k,
        "model": result.model.name,
        "model_version": result.model.version,
        "latency_ms": round((time.perf_counter() - request.state.started) * 1000.0, 3),
        "request_id": ctx.request_id,
        "explanations": explanations,
    }
    return _respond(request, ctx, payload, [body.text], result)


@router.post("/batch", response_model=BatchResponse)
@requires(Scope.CLASSIFY)
async def batch(body: BatchRequest, request: Request) -> Response:
    """Classify up to `max_batch_texts` texts (512 by default) in one call; results keep the input order.

    Each result equals what `/v1/classify` returns for that text alone. An item at fault is named by its index,
    e.g. `texts[3]`.
    """
    body.refuse_unavailable()
    ctx = _Context.of(request)
    result = await _classify(body, body.texts, ctx)
    payload = {
        "results": [
            {"index": i, "labels": _label_dicts(p), "predicted": p.predicted, "abstained": p.abstained}
            for i, p in enumerate(result.predictions)
        ],
        "model": result.model.name,
        "model_version": result.model.version,
        "request_id": ctx.request_id,
    }
    return _respond(request, ctx, payload, body.texts, result)


def _label_dicts(prediction: Prediction) -> list[dict[str, Any]]:
    # Plain dicts: orjson writes them ten times faster than the same dataclass objects (27 against 268 us for a
    # batch of 64 results with three labels each).
    return [{"label": s.label, "score": s.score} for s in prediction.labels]


def _respond(
    request: Request, ctx: _Context, payload: dict[str, Any], texts: list[str], result: Classification
) -> Response:
    """`payload` (shaped as the route's `response_model`) as JSON, with the headers of the shared response path.

    Metrics and the prediction log are recorded now (no I/O); shadow scoring runs after the response is sent.
    The hot routes build plain dicts instead of response models that FastAPI would validate again and encode with
    the standard library: for a batch of 64 that was about a fifth of the request's time. tests/api checks every
    field against the documented models.
    """
    ctx.monitoring.observe(ctx.request_id, getattr(request.state, "key_prefix", None), texts, result)
    shadow = None
    if ctx.monitoring.wants_shadow(result):
        shadow = BackgroundTask(ctx.monitoring.score_shadow, texts, result)
    return json_response(request, payload, Served.classification(result), shadow)


async def _classify(body: ClassifyOptions, texts: list[str], ctx: _Context, *, single: bool = False) -> Classification:
    """With `labels` or `categories`: zero-shot against them; otherwise the named (or default) trained model."""
    labels = body.zero_shot_labels()
    if labels is not None and body.method == "llm":
        return await ctx.llm.classify(
            texts,
            labels,
            param=body.zero_shot_param,
            model=body.model,
            top_k=body.top_k,
            threshold=body.threshold,
            single=single,
            payer=ctx.payer,
        )
    if labels is not None:
        return await ctx.zeroshot.classify(
            texts,
            labels,
            param=body.zero_shot_param,
            mode=body.zero_shot_mode,
            top_k=body.top_k,
            threshold=body.threshold,
            single=single,
            payer=ctx.payer,
            abstain=NEVER.with_overrides(body.min_confidence, body.min_margin),
        )
    return await ctx.service.classify(
        texts,
        model=body.model,
        top_k=body.top_k,
        threshold=body.threshold,
        single=single,
        payer=ctx.payer,
        request_id=ctx.request_id,
        **body.abstain_overrides(),
    )
