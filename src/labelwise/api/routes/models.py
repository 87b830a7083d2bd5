"""Read-only model listing: names, versions, aliases, labels in column order, metrics."""

from __future__ import annotations

from fastapi import APIRouter

from labelwise.api.access import requires
from labelwise.api.deps import EmbeddingsDep, ManagerDep
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.models import (
    ModelCard,
    ModelDetail,
    ModelList,
    ModelSummary,
    model_detail,
    model_summary,
)
from labelwise.errors import ModelNotFound
from labelwise.registry.store import check_name
from labelwise.services.keys import Scope

router = APIRouter(prefix="/v1", tags=["models"], responses=error_responses(401, 403))


@router.get("/models")
@requires(Scope.CLASSIFY)
async def list_models(manager: ManagerDep, embeddings: EmbeddingsDep) -> ModelList:
    """Every model with its versions (newest first) and aliases, in the OpenAI list shape, then the embedding
    model of `/v1/embeddings` (`{id, object, created, owned_by}` only), so OpenAI clients find it.

    Reflects the model store as of this server's last poll (every `model_poll_seconds`).
    """
    trained: list[ModelSummary | ModelCard] = [model_summary(n, v) for n, v in manager.models().items()]
    card = ModelCard(id=embeddings.model_id, created=embeddings.created)
    return ModelList(data=[*trained, card])


@router.get("/models/{name}", responses=error_responses(400, 404))
@requires(Scope.CLASSIFY)
async def get_model(name: str, manager: ManagerDep) -> ModelDetail:
    """One model: each version with its labels in the order of its probability columns, its metrics and aliases."""
    check_name(name, param="name")
    versions = manager.models().get(name)
    if not versions:
        raise ModelNotFound(f"name: model {name!r} not found", param="name")
    return model_detail(name, versions)
