"""vLLM's pooling API over trained models: `POST /classify`, `POST /invocations` (SageMaker's entry point, answered
as `/classify`) and `POST /pooling` with `task: classify`. Errors in vLLM's shape (see api/error_shapes.py)."""

from __future__ import annotations

import base64
import os
import time

import numpy as np
from fastapi import APIRouter, Request, Response

from labelwise.api.access import requires
from labelwise.api.deps import CompatDep, PayerDep, RequestIdDep
from labelwise.api.respond import Served, annotate
from labelwise.api.schemas.compat import (
    VllmClassifyItem,
    VllmClassifyRequest,
    VllmClassifyResponse,
    VllmPoolingItem,
    VllmPoolingRequest,
    VllmPoolingResponse,
    VllmUsage,
)
from labelwise.api.schemas.embeddings import openai_error_responses
from labelwise.errors import InvalidRequest
from labelwise.services.compat import CompatService, LabelOrderScores
from labelwise.services.credits import Payer
from labelwise.services.keys import Scope

router = APIRouter(tags=["vllm"], responses=openai_error_responses(400, 401, 402, 403, 404, 413, 429, 500, 503))


@router.post("/classify")
@requires(Scope.CLASSIFY)
async def vllm_classify(
    body: VllmClassifyRequest,
    request: Request,
    response: Response,
    service: CompatDep,
    payer: PayerDep,
    request_id: RequestIdDep,
) -> VllmClassifyResponse:
    """Classify one text or several with a trained model, as vLLM's `/classify` does: per text, the best label
    and `probs`, one score per label in the model's label order (see `GET /v1/models/{name}`). A multi-label
    model gives independent scores (they need not sum to 1). `use_activation: false` gives the scores before
    the activation (log-probabilities; log-odds for a multi-label model).

    Example: `{"model": "banking77", "input": ["My card has not arrived"]}` ->
    `{"id": "classify-...", "object": "list", "created": 1738324800, "model": "banking77", "data": [{"index": 0,
    "label": "card_arrival", "probs": [...], "num_classes": 77}], "usage": {"prompt_tokens": 5, "total_tokens": 5}}`.
    """
    return await _classify(body, request, response, service, payer, request_id)


@router.post("/invocations")
@requires(Scope.CLASSIFY)
async def vllm_invocations(
    body: VllmClassifyRequest,
    request: Request,
    response: Response,
    service: CompatDep,
    payer: PayerDep,
    request_id: RequestIdDep,
) -> VllmClassifyResponse:
    """SageMaker's entry point, as vLLM serves it for a classification model: the same request and answer as
    `POST /classify`."""
    return await _classify(body, request, response, service, payer, request_id)


@router.post("/pooling")
@requires(Scope.CLASSIFY)
async def vllm_pooling(
    body: VllmPoolingRequest,
    request: Request,
    response: Response,
    service: CompatDep,
    payer: PayerDep,
    request_id: RequestIdDep,
) -> VllmPoolingResponse:
    """vLLM's pooling API with `task: classify` (the only task a classification model serves here): per text,
    `data` holds the same scores as `probs` of `/classify`, as numbers or base64 float32 (`encoding_format`)."""
    if body.task != "classify":
        raise InvalidRequest(
            f"task: unsupported task {body.task[:64]!r}; a classification model serves 'classify' only", param="task"
        )
    found = await _scores(body, request, response, service, payer, request_id)
    data = [VllmPoolingItem(index=i, data=_encoded(row, body.encoding_format)) for i, row in enumerate(found.probs)]
    return VllmPoolingResponse(
        id="pool-" + os.urandom(16).hex(),
        created=int(time.time()),
        model=found.classification.model.name,
        data=data,
        usage=VllmUsage(prompt_tokens=found.words, total_tokens=found.words),
    )


async def _classify(
    body: VllmClassifyRequest,
    request: Request,
    response: Response,
    service: CompatService,
    payer: Payer | None,
    request_id: str,
) -> VllmClassifyResponse:
    found = await _scores(body, request, response, service, payer, request_id)
    result = found.classification
    labels = result.model.labels
    data = [
        VllmClassifyItem(index=i, label=p.labels[0].label, probs=probs, num_classes=len(labels))
        for i, (p, probs) in enumerate(zip(result.predictions, found.probs, strict=True))
    ]
    return VllmClassifyResponse(
        id="classify-" + os.urandom(16).hex(),
        created=int(time.time()),
        model=result.model.name,
        data=data,
        usage=VllmUsage(prompt_tokens=found.words, total_tokens=found.words),
    )


async def _scores(
    body: VllmClassifyRequest | VllmPoolingRequest,
    request: Request,
    response: Response,
    service: CompatService,
    payer: Payer | None,
    request_id: str,
) -> LabelOrderScores:
    texts = [body.input] if isinstance(body.input, str) else body.input
    found = await service.label_order(
        texts,
        model=body.model,
        truncate_words=body.truncate_prompt_tokens,
        raw=body.use_activation is False,
        payer=payer,
        request_id=request_id,
    )
    annotate(request, response, Served.classification(found.classification))
    return found


def _encoded(row: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode()
    return row
