"""The review queue's round trip through Label Studio: send it as tasks, bring the annotations back as feedback."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from labelwise.api.access import requires
from labelwise.api.deps import LabelStudioDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.review import (
    LabelStudioExport,
    LabelStudioExported,
    LabelStudioImport,
    LabelStudioImported,
)
from labelwise.services.keys import Scope

router = APIRouter(prefix="/v1/review", tags=["monitoring"], responses=error_responses(400, 401, 403, 404, 503))


@router.post("/label-studio/export")
@requires(Scope.ADMIN)
async def export_to_label_studio(body: LabelStudioExport, exchange: LabelStudioDep) -> LabelStudioExported:
    """Send the model's review queue (abstained predictions first, then the least confident; only predictions
    logged with their raw text) to a project of the configured Label Studio (`LABELWISE_LABEL_STUDIO_URL` and
    `LABELWISE_LABEL_STUDIO_TOKEN`) as tasks, each with our prediction as a pre-annotation. 503 with
    `Retry-After` when Label Studio cannot be reached."""
    result = await exchange.export(body.model, body.project, limit=body.limit)
    return LabelStudioExported(**asdict(result))


@router.post("/label-studio/import")
@requires(Scope.ADMIN)
async def import_from_label_studio(body: LabelStudioImport, exchange: LabelStudioDep) -> LabelStudioImported:
    """Store the project's finished annotations as feedback for the model (choices mapped to its labels, ignoring
    case); `labelwise train --name MODEL --with-feedback` trains on them."""
    result = await exchange.import_annotations(body.model, body.project)
    return LabelStudioImported(**asdict(result))
