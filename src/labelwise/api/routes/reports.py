"""A model version's training report as JSON, and its plots as PNG (scope `classify`).

The web UI fetches the plots with the key and shows them as blobs (an `<img>` cannot send headers). The plot name
is one of three fixed values, so no request can reach any other file.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from labelwise.api.access import requires
from labelwise.api.deps import ReportServiceDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.reports import PNG_RESPONSE, TrainingReport
from labelwise.services.keys import Scope
from labelwise.services.reports import ReportPlot

router = APIRouter(prefix="/v1", tags=["models"], responses=error_responses(400, 401, 403, 404, 500))

# Versions never change once published, but a deleted version's number can be reused: cache briefly.
_CACHE_CONTROL = "private, max-age=300"


@router.get("/models/{name}/versions/{version}/report")
@requires(Scope.CLASSIFY)
async def get_report(name: str, version: str, reports: ReportServiceDep) -> TrainingReport:
    """The training report of one version: metrics on the validation and test splits (accuracy, precision,
    recall and F1 per label and averaged, confusion matrix, reliability bins, ECE), the data summary and the
    engine's parameters. 404 when the version was published without a report.
    """
    report = await asyncio.to_thread(reports.report, name, version)
    return TrainingReport.model_validate(report)


@router.get("/models/{name}/versions/{version}/report/{plot}.png", responses=PNG_RESPONSE, response_class=Response)
@requires(Scope.CLASSIFY)
async def get_report_plot(name: str, version: str, plot: ReportPlot, reports: ReportServiceDep) -> Response:
    """One plot of the training report: `confusion_matrix`, `reliability` or `per_label_f1`. 404 when the report
    has no such plot (for example a reliability diagram of a version without evaluation data).
    """
    png = await asyncio.to_thread(reports.plot, name, version, plot)
    return Response(png, media_type="image/png", headers={"Cache-Control": _CACHE_CONTROL})
