"""What routes may depend on: the services built by `create_app`, as `Annotated` aliases.

The providers are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which would add
a thread hop to every request for what is an attribute lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from labelwise.api.errors import UNAUTHORIZED_MESSAGE
from labelwise.config import Settings
from labelwise.errors import Unauthorized
from labelwise.inference.manager import ModelManager
from labelwise.services.classify import ClassifyService
from labelwise.services.compat import CompatService
from labelwise.services.credits import Payer
from labelwise.services.embeddings import EmbeddingService
from labelwise.services.idempotency import IdempotencyService
from labelwise.services.keys import KeyService, Principal
from labelwise.services.limits import RequestLimiter
from labelwise.services.usage import UsageMeter
from labelwise.services.zeroshot import ZeroShotService
from labelwise.storage.db import Database


@dataclass(frozen=True, slots=True)
class AppServices:
    """Everything one app instance owns; built once by the composition root and kept in `app.state`."""

    settings: Settings
    db: Database
    manager: ModelManager
    classify: ClassifyService
    keys: KeyService
    usage: UsageMeter
    limiter: RequestLimiter
    idempotency: IdempotencyService


async def get_services(request: Request) -> AppServices:
    services: AppServices = request.app.state.services
    return services


async def get_classify_service(request: Request) -> ClassifyService:
    return (await get_services(request)).classify


async def get_manager(request: Request) -> ModelManager:
    return (await get_services(request)).manager


async def get_request_id(request: Request) -> str:
    """The id the context middleware gave this request."""
    request_id: str = request.state.request_id
    return request_id


async def get_key_service(request: Request) -> KeyService:
    return (await get_services(request)).keys


async def get_idempotency(request: Request) -> IdempotencyService:
    return (await get_services(request)).idempotency


async def get_usage_meter(request: Request) -> UsageMeter:
    return (await get_services(request)).usage


async def get_principal(request: Request) -> Principal:
    """The caller, as the auth middleware verified it."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:  # only reachable on a public path, where no route should ask for it
        raise Unauthorized(UNAUTHORIZED_MESSAGE)
    return principal


def payer_of(request: Request) -> Payer | None:
    """Who pays for this request and the route it is recorded under; None on a path without a key."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:
        return None
    route = getattr(request.scope.get("route"), "path", None) or request.url.path
    return Payer(principal.prefix, route, principal.metered)


async def get_payer(request: Request) -> Payer | None:
    return payer_of(request)


async def get_zeroshot(request: Request) -> ZeroShotService:
    zeroshot: ZeroShotService = request.app.state.zeroshot
    return zeroshot


async def get_compat(request: Request) -> CompatService:
    compat: CompatService = request.app.state.compat
    return compat


async def get_embeddings(request: Request) -> EmbeddingService:
    embeddings: EmbeddingService = request.app.state.embeddings
    return embeddings


ServicesDep = Annotated[AppServices, Depends(get_services)]
ClassifyServiceDep = Annotated[ClassifyService, Depends(get_classify_service)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
KeyServiceDep = Annotated[KeyService, Depends(get_key_service)]
IdempotencyDep = Annotated[IdempotencyService, Depends(get_idempotency)]
UsageMeterDep = Annotated[UsageMeter, Depends(get_usage_meter)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PayerDep = Annotated[Payer | None, Depends(get_payer)]
ZeroShotDep = Annotated[ZeroShotService, Depends(get_zeroshot)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]
CompatDep = Annotated[CompatService, Depends(get_compat)]
