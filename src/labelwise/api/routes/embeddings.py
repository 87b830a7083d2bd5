"""`POST /v1/embeddings`: OpenAI-compatible sentence embeddings (errors in OpenAI's shape, see api/errors.py)."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request, Response

from labelwise.api.deps import EmbeddingsDep, PayerDep
from labelwise.api.schemas.embeddings import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    openai_error_responses,
)
from labelwise.errors import InvalidRequest
from labelwise.services.embeddings import Embeddings

router = APIRouter(
    prefix="/v1", tags=["embeddings"], responses=openai_error_responses(400, 401, 402, 403, 413, 429, 500, 503)
)


@router.post("/embeddings")
async def create_embeddings(
    body: EmbeddingRequest, request: Request, response: Response, service: EmbeddingsDep, payer: PayerDep
) -> EmbeddingResponse:
    """Embed one text or up to 512 with all-MiniLM-L6-v2: 384 float32 numbers each, L2-normalized (so a dot
    product is the cosine similarity). Works with OpenAI's clients, e.g.
    `OpenAI(base_url="http://host:8000/v1", api_key=KEY).embeddings.create(model="all-MiniLM-L6-v2", input=[...])`.

    Texts longer than 256 tokens are embedded in overlapping windows whose vectors are averaged. Concurrent
    requests are encoded together; a full queue answers 503 with `Retry-After`. Billed as engine `embedding`
    per text. Example response: `{"object": "list", "data": [{"object": "embedding", "index": 0, "embedding":
    [0.0123, ...]}], "model": "all-MiniLM-L6-v2", "usage": {"prompt_tokens": 9, "total_tokens": 9}}`.
    """
    model = service.check_model(body.model)
    if body.dimensions is not None and body.dimensions != service.dimensions:
        raise InvalidRequest(
            f"dimensions: {body.dimensions}, this model gives {service.dimensions} only", param="dimensions"
        )
    texts = [body.input] if isinstance(body.input, str) else body.input
    result = await service.embed(texts, payer=payer)
    _annotate(request, response, result, model)
    data = [Embedding(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(result.vectors)]
    usage = EmbeddingUsage(prompt_tokens=result.tokens, total_tokens=result.tokens)
    return EmbeddingResponse(data=data, model=model, usage=usage)


def _encode(vector: np.ndarray[tuple[int], np.dtype[np.float32]], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        # What OpenAI's clients decode: the raw little-endian float32 bytes, base64.
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


def _annotate(request: Request, response: Response, result: Embeddings, model: str) -> None:
    """Timing and credit headers, and the access log's fields (never the text)."""
    response.headers["x-queue-time"] = str(round(result.timing.queue_ms, 3))
    response.headers["x-inference-time"] = str(round(result.timing.inference_ms, 3))
    if result.charge is not None:
        response.headers["x-credits-cost"] = str(result.charge.cost)
        if result.charge.remaining is not None:
            response.headers["x-credits-remaining"] = str(result.charge.remaining)
    request.state.model = model
    request.state.texts = len(result.vectors)
    request.state.queue_ms = round(result.timing.queue_ms, 3)
    request.state.inference_ms = round(result.timing.inference_ms, 3)
