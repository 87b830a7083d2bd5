"""What routes may depend on: the parts of the app's `Container` (see bootstrap.py), as typed `Annotated` aliases.

The providers are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which would add
a thread hop to every request for what is an attribute lookup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, Request

from labelwise.api.errors import UNAUTHORIZED_MESSAGE
from labelwise.bootstrap import Container
from labelwise.config import Settings
from labelwise.errors import Unauthorized
from labelwise.inference.manager import ModelManager
from labelwise.monitoring.service import Monitoring
from labelwise.services.aliases import AliasService
from labelwise.services.classify import ClassifyService
from labelwise.services.compat import CompatService
from labelwise.services.credits import Payer
from labelwise.services.embeddings import EmbeddingService
from labelwise.services.generation import GenerationService
from labelwise.services.idempotency import IdempotencyService
from labelwise.services.jobs import JobService
from labelwise.services.keys import KeyService, Principal
from labelwise.services.labelstudio import LabelStudioExchange
from labelwise.services.reports import ReportService
from labelwise.services.usage import UsageMeter
from labelwise.services.zeroshot import ZeroShotService
from labelwise.storage.db import Database


class _HasContainer(Protocol):
    container: Container


def container_of(request: Request) -> Container:
    """The app's container (`LabelwiseAPI.container`)."""
    app: _HasContainer = request.app
    return app.container


async def get_settings(request: Request) -> Settings:
    return container_of(request).settings


async def get_db(request: Request) -> Database:
    return container_of(request).db


async def get_manager(request: Request) -> ModelManager:
    return container_of(request).manager


async def get_classify_service(request: Request) -> ClassifyService:
    return container_of(request).classify


async def get_key_service(request: Request) -> KeyService:
    return container_of(request).keys


async def get_idempotency(request: Request) -> IdempotencyService:
    return container_of(request).idempotency


async def get_usage_meter(request: Request) -> UsageMeter:
    return container_of(request).usage


async def get_zeroshot(request: Request) -> ZeroShotService:
    return container_of(request).zeroshot


async def get_compat(request: Request) -> CompatService:
    return container_of(request).compat


async def get_embeddings(request: Request) -> EmbeddingService:
    return container_of(request).embeddings


async def get_generation(request: Request) -> GenerationService:
    return container_of(request).generation


async def get_monitoring(request: Request) -> Monitoring:
    return container_of(request).monitoring


async def get_label_studio(request: Request) -> LabelStudioExchange:
    return container_of(request).label_studio


async def get_aliases(request: Request) -> AliasService:
    return container_of(request).aliases


async def get_reports(request: Request) -> ReportService:
    return container_of(request).reports


async def get_jobs(request: Request) -> JobService:
    return container_of(request).jobs


async def get_uploads_dir(request: Request) -> Path:
    return container_of(request).uploads_dir


async def get_request_id(request: Request) -> str:
    """The id the context middleware gave this request."""
    request_id: str = request.state.request_id
    return request_id


async def get_principal(request: Request) -> Principal:
    """The caller, as the auth middleware verified it."""
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    if principal is None:  # only reachable on a public route, where no handler should ask for it
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


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
ClassifyServiceDep = Annotated[ClassifyService, Depends(get_classify_service)]
KeyServiceDep = Annotated[KeyService, Depends(get_key_service)]
IdempotencyDep = Annotated[IdempotencyService, Depends(get_idempotency)]
UsageMeterDep = Annotated[UsageMeter, Depends(get_usage_meter)]
ZeroShotDep = Annotated[ZeroShotService, Depends(get_zeroshot)]
CompatDep = Annotated[CompatService, Depends(get_compat)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]
GenerationDep = Annotated[GenerationService, Depends(get_generation)]
MonitoringDep = Annotated[Monitoring, Depends(get_monitoring)]
LabelStudioDep = Annotated[LabelStudioExchange, Depends(get_label_studio)]
AliasServiceDep = Annotated[AliasService, Depends(get_aliases)]
ReportServiceDep = Annotated[ReportService, Depends(get_reports)]
JobServiceDep = Annotated[JobService, Depends(get_jobs)]
UploadsDirDep = Annotated[Path, Depends(get_uploads_dir)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PayerDep = Annotated[Payer | None, Depends(get_payer)]
