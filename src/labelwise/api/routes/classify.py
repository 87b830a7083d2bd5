"""`POST /v1/classify` and `POST /v1/batch`: the native classification routes."""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, BackgroundTasks, Request, Response

from labelwise.api.deps import ClassifyServiceDep, PayerDep, RequestIdDep, ZeroShotDep
from labelwise.api.routes.monitoring import MonitoringDep
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
from labelwise.monitoring.service import Monitoring
from labelwise.services.classify import Classification, ClassifyService
from labelwise.services.credits import Payer
from labelwise.services.zeroshot import ZeroShotService

router = APIRouter(
    prefix="/v1", tags=["classify"], responses=error_responses(400, 401, 402, 403, 404, 413, 429, 500, 503)
)


@router.post("/classify", response_model=ClassifyResponse)
async def classify(
    body: ClassifyRequest,
    request: Request,
    response: Response,
    service: ClassifyServiceDep,
    request_id: RequestIdDep,
    payer: PayerDep,
    monitoring: MonitoringDep,
    background: BackgroundTasks,
    zeroshot: ZeroShotDep,
) -> Response:
    """Classify one text with a model (`name`, `name@alias` or `name:version`; default: the default model).

    Returns the `top_k` best labels at or over `threshold`, best first, and `predicted`, the model's own decision.
    Concurrent requests are scored together in one engine call; the `x-queue-time` and `x-inference-time` headers
    say how many milliseconds this request waited for that call and how long the call took. `x-credits-cost` says
    what the request cost, `x-credits-remaining` the key's balance after it (absent for an unlimited key).

    Zero-shot: send `labels` (names) or `categories` (`[{key, description}]`, up to 100) and no `model`; the
    text is scored by its similarity to each label with the sentence encoder, no training needed. Scores sum to 1
    unless `multi_label: true` (independent scores, every label at 0.5 or more predicted). The response names the
    model `zeroshot` and, as its version, the encoder. Example: `{"text": "The striker scored twice", "labels":
    ["sports", "cooking", "finance"]}` -> `{"labels": [{"label": "sports", "score": 0.93}, ...], "predicted":
    ["sports"], "model": "zeroshot", "model_version": "all-MiniLM-L6-v2", ...}`.

    `explain: true` adds, per returned label, the words or n-grams of the text that raised its score most. Cost:
    for a linear model about one more prediction (tf-idf value x coefficient per feature, credited back to the
    words); for other engines leave-one-word-out, one engine call on up to 65 variants of the text (its first 64
    words left out in turn), so tens of times the cost of the classification itself.
    """
    body.refuse_unavailable()
    result = await _classify(body, [body.text], service, zeroshot, payer, request_id, single=True)
    _annotate(request, response, result)
    _monitor(request, monitoring, background, [body.text], result)
    prediction = result.predictions[0]
    explanations = None
    if body.explain:
        found = await service.explain(body.text, result, [s.label for s in prediction.labels])
        explanations = [
            Explanation(
                label=e.label, method=e.method, terms=[ExplanationTerm(term=t.term, weight=t.weight) for t in e.terms]
            ).model_dump()
            for e in found
        ]
    payload = {
        "labels": prediction.labels,
        "predicted": prediction.predicted,
        "top_k": body.top_k,
        "model": result.model.name,
        "model_version": result.model.version,
        "latency_ms": round((time.perf_counter() - request.state.started) * 1000.0, 3),
        "request_id": request_id,
        "explanations": explanations,
    }
    return _json(payload, response)


@router.post("/batch", response_model=BatchResponse)
async def batch(
    body: BatchRequest,
    request: Request,
    response: Response,
    service: ClassifyServiceDep,
    request_id: RequestIdDep,
    payer: PayerDep,
    monitoring: MonitoringDep,
    background: BackgroundTasks,
    zeroshot: ZeroShotDep,
) -> Response:
    """Classify up to `max_batch_texts` texts (512 by default) in one call; results keep the input order.

    Each result equals what `/v1/classify` returns for that text alone. An item at fault is named by its index,
    e.g. `texts[3]`.
    """
    body.refuse_unavailable()
    result = await _classify(body, body.texts, service, zeroshot, payer, request_id)
    _annotate(request, response, result)
    _monitor(request, monitoring, background, body.texts, result)
    payload = {
        "results": [
            {"index": i, "labels": p.labels, "predicted": p.predicted} for i, p in enumerate(result.predictions)
        ],
        "model": result.model.name,
        "model_version": result.model.version,
        "request_id": request_id,
    }
    return _json(payload, response)


def _json(payload: dict[str, Any], response: Response) -> Response:
    """`payload` (shaped as the route's `response_model`) as JSON, with the headers set on `response`.

    The hot routes build plain dicts of the domain objects (orjson writes dataclasses as objects) instead of
    response models that FastAPI would validate again and encode with the standard library: for a batch of 64
    that was about a fifth of the request's time. tests/api checks every field against the documented models.
    """
    out = Response(orjson.dumps(payload), media_type="application/json")
    out.raw_headers.extend(response.raw_headers)
    return out


async def _classify(
    body: ClassifyOptions,
    texts: list[str],
    service: ClassifyService,
    zeroshot: ZeroShotService,
    payer: Payer | None,
    request_id: str,
    *,
    single: bool = False,
) -> Classification:
    """With `labels` or `categories`: zero-shot against them; otherwise the named (or default) trained model."""
    labels = body.zero_shot_labels()
    if labels is not None:
        return await zeroshot.classify(
            texts,
            labels,
            param=body.zero_shot_param,
            mode=body.zero_shot_mode,
            top_k=body.top_k,
            threshold=body.threshold,
            single=single,
            payer=payer,
        )
    return await service.classify(
        texts,
        model=body.model,
        top_k=body.top_k,
        threshold=body.threshold,
        single=single,
        payer=payer,
        request_id=request_id,
    )


def _monitor(
    request: Request, monitoring: Monitoring, background: BackgroundTasks, texts: list[str], result: Classification
) -> None:
    """Metrics and the prediction log now (no I/O); shadow scoring after the response is sent."""
    monitoring.observe(request.state.request_id, getattr(request.state, "key_prefix", None), texts, result)
    if monitoring.wants_shadow(result):
        background.add_task(monitoring.score_shadow, texts, result)


def _annotate(request: Request, response: Response, result: Classification) -> None:
    """Timing and credit headers for the client, and the access log's fields (never the text)."""
    queue_ms = round(result.timing.queue_ms, 3)
    inference_ms = round(result.timing.inference_ms, 3)
    response.headers["x-queue-time"] = str(queue_ms)
    response.headers["x-inference-time"] = str(inference_ms)
    if result.charge is not None:
        response.headers["x-credits-cost"] = str(result.charge.cost)
        if result.charge.remaining is not None:
            response.headers["x-credits-remaining"] = str(result.charge.remaining)
    state = request.state
    state.model = result.model.name
    state.version = result.model.version
    state.texts = len(result.predictions)
    state.queue_ms = queue_ms
    state.inference_ms = inference_ms
