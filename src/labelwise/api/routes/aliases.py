"""Promotion: point an alias (`production`, `canary`, ...) at a version, or remove it (scope `admin`).

Each change is written to the audit log with the key's prefix and the request id. The answer comes after this
server has re-read the store, so it already routes `name@alias` to the new version; other replicas follow within
`model_poll_seconds`.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from labelwise.api.access import requires
from labelwise.api.deps import AliasServiceDep, ManagerDep, RequestIdDep
from labelwise.api.schemas.aliases import AliasUpdate
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.models import ModelDetail, model_detail
from labelwise.errors import ModelNotFound
from labelwise.inference.manager import ModelManager
from labelwise.services.keys import Scope

router = APIRouter(prefix="/v1", tags=["models"], responses=error_responses(400, 401, 403, 404))


def actor_of(request: Request) -> str:
    """Who the audit log names: the public prefix of the key that made the request."""
    return f"key:{request.state.principal.prefix}"


@router.put("/models/{name}/aliases/{alias}")
@requires(Scope.ADMIN)
async def set_alias(
    name: str,
    alias: str,
    body: AliasUpdate,
    request: Request,
    aliases: AliasServiceDep,
    manager: ManagerDep,
    request_id: RequestIdDep,
) -> ModelDetail:
    """Point `alias` of model `name` at `version` (creating or moving it); setting `production` promotes that
    version. `latest` is computed and cannot be set. Returns the model with its aliases as served now.
    """
    await asyncio.to_thread(aliases.set, name, alias, body.version, actor=actor_of(request), request_id=request_id)
    return await _current(manager, name)


@router.delete("/models/{name}/aliases/{alias}")
@requires(Scope.ADMIN)
async def remove_alias(
    name: str, alias: str, request: Request, aliases: AliasServiceDep, manager: ManagerDep, request_id: RequestIdDep
) -> ModelDetail:
    """Remove an explicit alias of model `name`. Without an explicit `production`, the newest version serves.
    Returns the model with its aliases as served now.
    """
    await asyncio.to_thread(aliases.remove, name, alias, actor=actor_of(request), request_id=request_id)
    return await _current(manager, name)


async def _current(manager: ModelManager, name: str) -> ModelDetail:
    await manager.refresh()
    versions = manager.models().get(name)
    if not versions:  # deleted by someone else between the change and the refresh
        raise ModelNotFound(f"name: model {name!r} not found", param="name")
    return model_detail(name, versions)
