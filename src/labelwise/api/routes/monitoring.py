"""Monitoring routes: `/metrics` for Prometheus, feedback, the review queue and drift."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from labelwise.api.access import requires
from labelwise.api.deps import MonitoringDep, PrincipalDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.monitoring import (
    DriftResponse,
    FeedbackCreate,
    FeedbackPublic,
    ReviewItem,
    ReviewResponse,
)
from labelwise.monitoring.drift import parse_window
from labelwise.monitoring.feedback import FeedbackInput
from labelwise.monitoring.metrics import CONTENT_TYPE, GaugeCollector, render
from labelwise.services.keys import Scope

router = APIRouter(tags=["monitoring"], responses=error_responses(400, 401, 403, 404))


@router.get("/metrics", response_class=Response)
@requires(Scope.ADMIN)
async def metrics(monitoring: MonitoringDep) -> Response:
    """Prometheus metrics of every worker of this server: requests by route, status, model and version; request,
    queue and inference time; texts per request; cache hits; predictions per label; confidence; rate-limit and
    credit rejections; job progress; shadow agreement; and `labelwise_drift_psi` per production model (the last
    24 h, recomputed in the background). Needs the `admin` scope unless `metrics_public` is set."""
    drift = GaugeCollector(
        "labelwise_drift_psi",
        "PSI of predicted labels, last 24 h, vs validation.",
        ["model", "version"],
        monitoring.drift.gauge,
    )
    return Response(render([drift]), media_type=CONTENT_TYPE)


@router.post("/v1/feedback", status_code=201)
@requires(Scope.CLASSIFY)
async def feedback(body: FeedbackCreate, principal: PrincipalDep, monitoring: MonitoringDep) -> FeedbackPublic:
    """Store a correction: `labels` are the right ones for `request_id` (a logged prediction; `index` picks a
    text of a batch) or for `text`. Needs the `classify` scope. Feedback whose text is known (sent, or logged
    with raw text) is used by `labelwise train --with-feedback`."""
    given = FeedbackInput(body.labels, body.request_id, body.index, body.text, body.model)
    return FeedbackPublic.of(await monitoring.feedback.submit(given, principal.prefix))


@router.get("/v1/review")
@requires(Scope.ADMIN)
async def review(
    monitoring: MonitoringDep,
    model: str | None = Query(None, max_length=64),
    by: str = Query("confidence", description="`confidence` (top-1 score) or `margin` (top-1 minus top-2)."),
    limit: int = Query(50, ge=1, le=500),
) -> ReviewResponse:
    """The review queue: logged predictions, least sure first. Only predictions logged with their raw text
    (`log_raw_text` or a key in `log_raw_text_keys`) are listed. Needs the `admin` scope (it shows texts)."""
    rows = await monitoring.feedback.review(model, by=by, limit=limit)
    return ReviewResponse(items=[ReviewItem.of(row) for row in rows])


@router.get("/v1/models/{name}/drift")
@requires(Scope.CLASSIFY)
async def drift(name: str, monitoring: MonitoringDep, window: str = Query("24h", max_length=16)) -> DriftResponse:
    """Drift of the production version of `name` over the last `window` (`30m`, `24h`, `7d`; at most 90d): the
    PSI of its predicted labels against validation, and its confidence against validation's. Reads the
    prediction log, so it sees what was sampled into it."""
    return DriftResponse.of(await monitoring.drift.drift(name, parse_window(window)))
