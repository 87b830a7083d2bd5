"""`POST /classification`: the labels API, zero-shot over label names (errors in the native shape)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from labelwise.api.access import requires
from labelwise.api.deps import CompatDep, PayerDep
from labelwise.api.respond import Served, annotate
from labelwise.api.schemas.compat import LabelsClassificationRequest, LabelsClassificationResponse
from labelwise.api.schemas.errors import error_responses
from labelwise.services.keys import Scope

router = APIRouter(tags=["labels"], responses=error_responses(400, 401, 402, 403, 413, 429, 500, 503))


@router.post("/classification")
@requires(Scope.CLASSIFY)
async def classify_labels(
    body: LabelsClassificationRequest, request: Request, response: Response, service: CompatDep, payer: PayerDep
) -> LabelsClassificationResponse:
    """Zero-shot classification of one text against label names, best first; send the key as
    `Authorization: Token KEY`. `multi_class: true` scores each label independently (else scores sum to 1).
    Zero-shot has no validation data to tune an abstain rule on, so this surface never abstains and its shape has
    no such field; `/v1/classify` with `labels` and `min_confidence`/`min_margin` abstains on request.

    Example: `{"text": "The match went to extra time", "labels": ["sport", "politics"]}` ->
    `{"labels": ["sport", "politics"], "scores": [0.9, 0.1]}`.
    """
    result = await service.labels(body.text, body.labels, multi_class=body.multi_class, payer=payer)
    annotate(request, response, Served.classification(result))
    ranked = result.predictions[0].labels
    return LabelsClassificationResponse(labels=[s.label for s in ranked], scores=[s.score for s in ranked])
