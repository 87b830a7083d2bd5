"""`/v1/jobs`: classify or embed a whole file in the background. Submit (202), follow, fetch the results, cancel.

The upload is streamed to a temporary file by the form parser, copied under `data_dir/uploads` and checked
before the job is accepted; the body limit for this route is `max_upload_bytes`, not the normal one.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse

from labelwise.api.access import any_key, requires
from labelwise.api.deps import IdempotencyDep, JobServiceDep, PrincipalDep, UploadsDirDep
from labelwise.api.schemas.errors import ErrorResponse, error_responses
from labelwise.api.schemas.jobs import JobKind, JobList, JobPublic
from labelwise.errors import InvalidRequest
from labelwise.services.idempotency import IdempotencyService, Replay, body_hash
from labelwise.services.keys import Scope

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(400, 401, 403, 429))

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MEDIA_TYPES = {".csv": "text/csv", ".tsv": "text/tab-separated-values", ".jsonl": "application/x-ndjson"}
IDEMPOTENCY_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "A request with this Idempotency-Key is still in progress."},
    422: {"model": ErrorResponse, "description": "This Idempotency-Key was used with a different body."},
}
JobIdPath = PathParam(max_length=64, description="The job id (`job_...`).")


IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", description="Replays the first answer.")]


def save_upload(upload: UploadFile, uploads: Path) -> tuple[Path, str]:
    """Copy the upload under `uploads` keeping its (sanitised) name, for its extension; its path and SHA-256."""
    name = _SAFE_NAME.sub("_", Path(upload.filename or "").name)[-100:]
    if not Path(name).suffix:
        raise InvalidRequest("file: the upload needs a file name ending in .csv, .jsonl or .parquet", param="file")
    directory = uploads / secrets.token_hex(8)
    directory.mkdir(parents=True)
    target = directory / name
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while block := upload.file.read(1 << 20):
            digest.update(block)
            out.write(block)
    return target, digest.hexdigest()


async def created(
    idempotency: IdempotencyService,
    key_prefix: str,
    idem_key: str | None,
    fields: dict[str, Any],
    create: Callable[[], Awaitable[JobPublic]],
) -> JSONResponse:
    """202 with the job and its `Location`; with an Idempotency-Key, a repeat gets the first answer again."""

    async def work() -> tuple[dict[str, Any], Replay]:
        body = (await create()).model_dump(mode="json")
        return body, Replay(202, body)

    if idem_key is None:
        body, _ = await work()
        return _accepted(202, body)
    answer = await idempotency.once(key_prefix, idem_key, body_hash(fields), work)
    if isinstance(answer, Replay):
        return _accepted(answer.status, answer.body)
    return _accepted(202, answer)


def _accepted(status: int, body: dict[str, Any]) -> JSONResponse:
    location = {"Location": f"/v1/jobs/{body['id']}"} if "id" in body else None
    return JSONResponse(body, status_code=status, headers=location)


@router.post(
    "", status_code=202, response_model=JobPublic, responses={**error_responses(402, 404, 413), **IDEMPOTENCY_RESPONSES}
)
@requires(Scope.CLASSIFY)
async def create_job(
    jobs: JobServiceDep,
    idempotency: IdempotencyDep,
    uploads: UploadsDirDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="CSV, JSON lines or Parquet; the name's extension says which")],
    kind: Annotated[
        JobKind, Form(description="classify: add a label and a score to each row; embed: add its vector")
    ] = "classify",
    model: Annotated[
        str | None,
        Form(
            max_length=200,
            description="classify (required): model, model@version or model@alias; "
            "embed: the embedding model (all-MiniLM-L6-v2, the default)",
        ),
    ] = None,
    text_col: Annotated[str, Form(max_length=200)] = "text",
    top_k: Annotated[int | None, Form(ge=1, le=20, description="classify only; 1 unless given")] = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Queue a job that classifies, or embeds, every row of `file`; the rows are checked before it is accepted
    (202). Classify results keep the input's format; embed results are Parquet, a float32 `embedding` column."""
    path, digest = await asyncio.to_thread(save_upload, file, uploads)
    fields = {"kind": kind, "file": digest, "model": model, "text_col": text_col, "top_k": top_k}
    if kind == "classify":  # the fields a classify job's key was hashed from before embed jobs existed
        fields |= {"top_k": top_k or 1}

    async def create() -> JobPublic:
        submit = partial(jobs.submit, kind, principal.prefix, path, model=model, text_col=text_col, top_k=top_k)
        return JobPublic.of(jobs.progress_of(await asyncio.to_thread(submit)))

    try:
        return await created(idempotency, principal.prefix, idempotency_key, fields, create)
    finally:
        await asyncio.to_thread(shutil.rmtree, path.parent, True)


@router.get("")
@any_key
def list_jobs(jobs: JobServiceDep, principal: PrincipalDep) -> JobList:
    """The caller's jobs, newest first (the last 100)."""
    return JobList(data=[JobPublic.of(p) for p in jobs.for_key(principal.prefix)])


@router.get("/{job_id}", responses=error_responses(404))
@any_key
def get_job(jobs: JobServiceDep, principal: PrincipalDep, job_id: str = JobIdPath) -> JobPublic:
    """A job's state and progress: rows done and total, rate, estimated time left, errors."""
    return JobPublic.of(jobs.progress(job_id, principal.prefix))


@router.get("/{job_id}/results", response_class=FileResponse, responses=error_responses(404))
@any_key
def get_results(jobs: JobServiceDep, principal: PrincipalDep, job_id: str = JobIdPath) -> FileResponse:
    """Once the job succeeded: classify, the input rows with `label` and `score` added, in the input's format;
    embed, the input rows with an `embedding` column (float32 lists), as Parquet."""
    path = jobs.results_path(job_id, principal.prefix)
    media_type = _MEDIA_TYPES.get(path.suffix, "application/vnd.apache.parquet")
    return FileResponse(path, media_type=media_type, filename=f"{job_id}{path.suffix}")


@router.delete("/{job_id}", responses=error_responses(404))
@any_key
def cancel_job(jobs: JobServiceDep, principal: PrincipalDep, job_id: str = JobIdPath) -> JobPublic:
    """Cancel a queued or running job: chunks in hand finish (and are billed), no others start."""
    return JobPublic.of(jobs.cancel(job_id, principal.prefix))
