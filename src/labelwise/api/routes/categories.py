"""`POST /text/classification`: the categories API (errors `{"error": message, "code": CODE}`, see api/errors.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from labelwise.api.access import requires
from labelwise.api.deps import CompatDep, PayerDep
from labelwise.api.respond import Served, annotate
from labelwise.api.schemas.compat import (
    CategoriesError,
    TextClassificationMetadata,
    TextClassificationRequest,
    TextClassificationResponse,
)
from labelwise.services.keys import Scope

_ERRORS: dict[int | str, dict[str, object]] = {
    400: {
        "model": CategoriesError,
        "description": "INVALID_PAYLOAD (not JSON, wrong types), INVALID_REQUEST (a value out of its limits), "
        "INPUT_TOO_LONG, INSUFFICIENT_BALANCE (out of credits).",
    },
    401: {"model": CategoriesError, "description": "UNAUTHORIZED: missing or invalid key."},
    429: {"model": CategoriesError, "description": "TOO_MANY_REQUESTS; see `Retry-After`."},
    500: {"model": CategoriesError, "description": "TEXT_CLASSIFICATION_ERROR: inference failed on our side."},
    503: {"model": CategoriesError, "description": "TEXT_CLASSIFICATION_ERROR: overloaded; see `Retry-After`."},
}

router = APIRouter(tags=["categories"], responses=_ERRORS)


@router.post("/text/classification")
@requires(Scope.CLASSIFY)
async def classify_categories(
    body: TextClassificationRequest, request: Request, response: Response, service: CompatDep, payer: PayerDep
) -> TextClassificationResponse:
    """Score a text (up to 2,000 characters) against up to 25 categories described in the request; send the key
    as `Authorization: Bearer KEY`. `exclusive` scores sum to 1, `confidence` scores are independent, `binary`
    ones are 0 or 1. Categories under `threshold` are left out. With `model`, a trained model whose labels are
    the category keys answers instead of zero-shot. `metadata.cost` is in credits; `metadata.abstained` is true
    when that model's abstain rule found its best category not sure enough: the scores stay, except `binary`,
    whose answers are decisions and are then all 0.

    Example: `{"text": "My card has not arrived", "type": "exclusive", "categories": [{"key": "card",
    "description": "cards and delivery"}, {"key": "payments", "description": "transfers"}]}` ->
    `{"data": {"card": 0.93, "payments": 0.07}, "metadata": {"cost": 5}}`.
    """
    found = await service.categories(
        body.text,
        [(c.key, c.description) for c in body.categories],
        kind=body.type,
        threshold=body.threshold,
        model=body.model,
        payer=payer,
    )
    annotate(request, response, Served.classification(found.classification))
    abstained = found.classification.predictions[0].abstained
    return TextClassificationResponse(
        data=found.scores, metadata=TextClassificationMetadata(cost=found.cost, abstained=abstained)
    )
