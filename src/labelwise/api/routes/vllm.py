"""`POST /classify`: vLLM's classification API over trained models (errors in OpenAI's shape, see api/errors.py)."""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request, Response

from labelwise.api.access import requires
from labelwise.api.deps import CompatDep, PayerDep, RequestIdDep
from labelwise.api.respond import Served, annotate
from labelwise.api.schemas.compat import VllmClassifyItem, VllmClassifyRequest, VllmClassifyResponse, VllmUsage
from labelwise.api.schemas.embeddings import openai_error_responses
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
    model gives independent scores (they need not sum to 1).

    Example: `{"model": "banking77", "input": ["My card has not arrived"]}` ->
    `{"id": "classify-...", "object": "list", "created": 1738324800, "model": "banking77", "data": [{"index": 0,
    "label": "card_arrival", "probs": [...], "num_classes": 77}], "usage": {"prompt_tokens": 5, "total_tokens": 5}}`.
    """
    texts = [body.input] if isinstance(body.input, str) else body.input
    found = await service.label_order(
        texts, model=body.model, truncate_words=body.truncate_prompt_tokens, payer=payer, request_id=request_id
    )
    result = found.classification
    annotate(request, response, Served.classification(result))
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
