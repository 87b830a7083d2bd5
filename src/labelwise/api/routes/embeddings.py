"""`POST /v1/embeddings`: OpenAI-compatible sentence embeddings (errors in OpenAI's shape, see api/errors.py)."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request, Response

from labelwise.api.access import requires
from labelwise.api.deps import EmbeddingsDep, PayerDep
from labelwise.api.respond import Served, annotate
from labelwise.api.schemas.embeddings import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    openai_error_responses,
)
from labelwise.errors import InvalidRequest
from labelwise.services.keys import Scope

router = APIRouter(
    prefix="/v1", tags=["embeddings"], responses=openai_error_responses(400, 401, 402, 403, 413, 429, 500, 503)
)


@router.post("/embeddings")
@requires(Scope.CLASSIFY)
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
    annotate(request, response, Served.embeddings(result, model))
    data = [Embedding(index=i, embedding=_encode(v, body.encoding_format)) for i, v in enumerate(result.vectors)]
    usage = EmbeddingUsage(prompt_tokens=result.tokens, total_tokens=result.tokens)
    return EmbeddingResponse(data=data, model=model, usage=usage)


def _encode(vector: np.ndarray[tuple[int], np.dtype[np.float32]], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        # What OpenAI's clients decode: the raw little-endian float32 bytes, base64.
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]
