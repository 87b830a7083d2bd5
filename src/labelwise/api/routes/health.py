"""Liveness and readiness probes (public: no key needed)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from labelwise.api.access import public
from labelwise.api.deps import DatabaseDep, GenerationDep, ManagerDep
from labelwise.api.schemas.health import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health")
@public
async def health() -> Health:
    """The process is alive and answering. Says nothing about models or the database: see `/ready`."""
    return Health()


@router.get("/ready", responses={503: {"model": Readiness, "description": "Not ready; the body says why."}})
@public
async def ready(db: DatabaseDep, manager: ManagerDep, generation: GenerationDep, response: Response) -> Readiness:
    """Ready for traffic: the database answers and the production models have been loaded. 503 otherwise.

    `upstreams` reports the language-model upstream (`ok` or `degraded`) without changing readiness."""
    database = await asyncio.to_thread(db.ping)
    llm = await generation.upstream_state()
    upstreams = {} if llm is None else {"llm": llm}
    models_loaded = manager.ready
    is_ready = database and models_loaded
    if not is_ready:
        response.status_code = 503
    return Readiness(
        ready=is_ready,
        database=database,
        models_loaded=models_loaded,
        loaded=manager.loaded_refs(),
        upstreams=upstreams,
    )
