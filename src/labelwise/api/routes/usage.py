"""`GET /v1/usage`: the usage ledger, for the caller's own key, or any key's with the `admin` scope."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Query

from labelwise.api.access import any_key
from labelwise.api.deps import PrincipalDep, UsageMeterDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.usage import UsageResponse
from labelwise.services.usage import report_window, visible_key

router = APIRouter(prefix="/v1", tags=["usage"], responses=error_responses(400, 401, 403, 429))


@router.get("/usage")
@any_key
async def usage(
    meter: UsageMeterDep,
    principal: PrincipalDep,
    start: date | None = Query(None, alias="from", description="First UTC day (default: 30 days before `to`)."),
    end: date | None = Query(None, alias="to", description="Last UTC day, included (default: today)."),
    key: str | None = Query(None, max_length=64, description="A key's prefix; admin only for other keys."),
) -> UsageResponse:
    """Requests, texts, characters and credits per key, UTC day and route, with totals.

    Without the `admin` scope only the caller's own key is shown; with it, every key unless `key` names one.
    Counts only successful requests: refused ones (401, 402, 413, 429, bad input) are never billed or counted.
    """
    first, last = report_window(start, end)
    report = await meter.report(first, last, visible_key(principal, key))
    return UsageResponse.of(report)
