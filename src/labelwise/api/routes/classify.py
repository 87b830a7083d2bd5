"""`POST /v1/classify` and `POST /v1/batch`: the native classification routes."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from labelwise.api.deps import ClassifyServiceDep, PayerDep, RequestIdDep
from labelwise.api.schemas.classify import (
    BatchItem,
    BatchRequest,
    BatchResponse,
    ClassifyRequest,
    ClassifyResponse,
    LabelScore,
)
from labelwise.api.schemas.errors import error_responses
from labelwise.domain import Prediction
from labelwise.services.classify import Classification

router = APIRouter(
    prefix="/v1", tags=["classify"], responses=error_responses(400, 401, 402, 403, 404, 413, 429, 500, 503)
)


@router.post("/classify")
async def classify(
    body: ClassifyRequest,
    request: Request,
    response: Response,
    service: ClassifyServiceDep,
    request_id: RequestIdDep,
    payer: PayerDep,
) -> ClassifyResponse:
    """Classify one text with a model (`name`, `name@alias` or `name:version`; default: the default model).

    Returns the `top_k` best labels at or over `threshold`, best first, and `predicted`, the model's own decision.
    Concurrent requests are scored together in one engine call; the `x-queue-time` and `x-inference-time` headers
    say how many milliseconds this request waited for that call and how long the call took. `x-credits-cost` says
    what the request cost, `x-credits-remaining` the key's balance after it (absent for an unlimited key).
    """
    body.refuse_unavailable()
    result = await service.classify(
        [body.text], model=body.model, top_k=body.top_k, threshold=body.threshold, single=True, payer=payer
    )
    _annotate(request, response, result)
    prediction = result.predictions[0]
    return ClassifyResponse(
        labels=_scores(prediction),
        predicted=prediction.predicted,
        top_k=body.top_k,
        model=result.model.name,
        model_version=result.model.version,
        latency_ms=round((time.perf_counter() - request.state.started) * 1000.0, 3),
        request_id=request_id,
    )


@router.post("/batch")
async def batch(
    body: BatchRequest,
    request: Request,
    response: Response,
    service: ClassifyServiceDep,
    request_id: RequestIdDep,
    payer: PayerDep,
) -> BatchResponse:
    """Classify up to `max_batch_texts` texts (512 by default) in one call; results keep the input order.

    Each result equals what `/v1/classify` returns for that text alone. An item at fault is named by its index,
    e.g. `texts[3]`.
    """
    body.refuse_unavailable()
    result = await service.classify(
        body.texts, model=body.model, top_k=body.top_k, threshold=body.threshold, payer=payer
    )
    _annotate(request, response, result)
    return BatchResponse(
        results=[
            BatchItem(index=i, labels=_scores(p), predicted=p.predicted) for i, p in enumerate(result.predictions)
        ],
        model=result.model.name,
        model_version=result.model.version,
        request_id=request_id,
    )


def _scores(prediction: Prediction) -> list[LabelScore]:
    return [LabelScore(label=s.label, score=s.score) for s in prediction.labels]


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
