"""Read-only model listing: names, versions, aliases, labels in column order, metrics."""

from __future__ import annotations

from fastapi import APIRouter

from labelwise.api.deps import ManagerDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.models import ModelDetail, ModelList, model_detail, model_summary
from labelwise.errors import ModelNotFound
from labelwise.registry.store import check_name

router = APIRouter(prefix="/v1", tags=["models"], responses=error_responses(401, 403))


@router.get("/models")
async def list_models(manager: ManagerDep) -> ModelList:
    """Every model with its versions (newest first) and aliases, in the OpenAI list shape.

    Reflects the model store as of this server's last poll (every `model_poll_seconds`).
    """
    return ModelList(data=[model_summary(name, versions) for name, versions in manager.models().items()])


@router.get("/models/{name}", responses=error_responses(400, 404))
async def get_model(name: str, manager: ManagerDep) -> ModelDetail:
    """One model: each version with its labels in the order of its probability columns, its metrics and aliases."""
    check_name(name, param="name")
    versions = manager.models().get(name)
    if not versions:
        raise ModelNotFound(f"name: model {name!r} not found", param="name")
    return model_detail(name, versions)
