"""What routes may depend on: the services built by `create_app`, as `Annotated` aliases.

The providers are `async def` on purpose: FastAPI runs plain `def` dependencies in a thread pool, which would add
a thread hop to every request for what is an attribute lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from labelwise.config import Settings
from labelwise.inference.manager import ModelManager
from labelwise.services.classify import ClassifyService
from labelwise.services.keys import KeyService
from labelwise.storage.db import Database


@dataclass(frozen=True, slots=True)
class AppServices:
    """Everything one app instance owns; built once by the composition root and kept in `app.state`."""

    settings: Settings
    db: Database
    manager: ModelManager
    classify: ClassifyService
    keys: KeyService


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


ServicesDep = Annotated[AppServices, Depends(get_services)]
ClassifyServiceDep = Annotated[ClassifyService, Depends(get_classify_service)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
