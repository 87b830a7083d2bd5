"""Liveness and readiness probes (public: no key needed)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from labelwise.api.deps import ServicesDep
from labelwise.api.schemas.health import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> Health:
    """The process is alive and answering. Says nothing about models or the database: see `/ready`."""
    return Health()


@router.get("/ready", responses={503: {"model": Readiness, "description": "Not ready; the body says why."}})
async def ready(services: ServicesDep, response: Response) -> Readiness:
    """Ready for traffic: the database answers and the production models have been loaded. 503 otherwise."""
    database = await asyncio.to_thread(services.db.ping)
    models_loaded = services.manager.ready
    is_ready = database and models_loaded
    if not is_ready:
        response.status_code = 503
    return Readiness(
        ready=is_ready, database=database, models_loaded=models_loaded, loaded=services.manager.loaded_refs()
    )
