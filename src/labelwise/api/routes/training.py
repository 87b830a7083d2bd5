"""`POST /v1/models`: train a new model version from an uploaded file, as a background job (the `train` scope).

The data is checked as `labelwise train` checks it before the job is accepted; the job then trains, evaluates
and publishes the version with its report, and is followed like any job at `/v1/jobs/{id}`.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Form, UploadFile
from fastapi import File as FileParam

from labelwise.api.access import requires
from labelwise.api.deps import IdempotencyDep, JobServiceDep, PrincipalDep, UploadsDirDep
from labelwise.api.routes.jobs import IDEMPOTENCY_RESPONSES, IdempotencyKey, created, save_upload
from labelwise.api.schemas.errors import error_responses
from labelwise.api.schemas.jobs import JobPublic
from labelwise.data import ConflictRule, ReadOptions
from labelwise.errors import InvalidRequest
from labelwise.services.keys import Scope
from labelwise.services.training import TrainRequest

router = APIRouter(prefix="/v1", tags=["models"], responses=error_responses(400, 401, 403, 429))


def _params(raw: str) -> dict[str, Any]:
    try:
        params = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("params: not valid JSON", param="params") from None
    if not isinstance(params, dict):
        raise InvalidRequest("params: must be a JSON object of engine hyperparameters", param="params")
    return params


@router.post(
    "/models", status_code=202, response_model=JobPublic, responses={**error_responses(413), **IDEMPOTENCY_RESPONSES}
)
@requires(Scope.TRAIN)
async def train_model(
    jobs: JobServiceDep,
    idempotency: IdempotencyDep,
    uploads: UploadsDirDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, FileParam(description="labeled CSV, JSON lines or Parquet")],
    name: Annotated[str, Form(max_length=64, description="the model to add a version to")],
    engine: Annotated[str, Form(max_length=32)] = "linear",
    text_col: Annotated[str, Form(max_length=200)] = "text",
    label_col: Annotated[str | None, Form(max_length=200)] = None,
    on_conflict: Annotated[
        ConflictRule,
        Form(
            description="the same text with different labels (label sets, for multi-label): `majority` keeps its "
            "most frequent labels and drops it on a tie, `drop` drops it, `error` refuses the file"
        ),
    ] = "majority",
    params: Annotated[str, Form(max_length=10_000, description="engine hyperparameters as a JSON object")] = "{}",
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Queue training; 202 with the job. When it succeeds its `result` names the new version and its metrics."""
    path, digest = await asyncio.to_thread(save_upload, file, uploads)
    request = TrainRequest(
        name=name,
        train=path,
        engine=engine,
        options=ReadOptions(text_col=text_col, label_col=label_col, conflicts=on_conflict),
        params=_params(params),
        seed=jobs.config.seed,
        min_examples=jobs.config.min_examples,
    )
    fields = {
        "kind": "train",
        "file": digest,
        "name": name,
        "engine": engine,
        "text_col": text_col,
        "label_col": label_col,
        "on_conflict": on_conflict,
        "params": request.params,
    }

    async def create() -> JobPublic:
        job = await asyncio.to_thread(jobs.submit_train, principal.prefix, path, request)
        return JobPublic.of(jobs.progress_of(job))

    try:
        return await created(idempotency, principal.prefix, idempotency_key, fields, create)
    finally:
        await asyncio.to_thread(shutil.rmtree, path.parent, True)
