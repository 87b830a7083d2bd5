"""Bodies of the batch jobs API (`/v1/jobs`) and of training through the API (`POST /v1/models`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from labelwise.services.jobs import JobProgress

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["classify", "embed"]  # what `POST /v1/jobs` accepts (training jobs start at `POST /v1/models`)


class JobPublic(BaseModel):
    """A job and its progress. `rate` is rows per second since it started; `eta_seconds` what is left at that rate."""

    id: str
    object: Literal["job"] = "job"
    kind: Literal["classify", "embed", "train"]
    state: JobState
    model: str | None = Field(
        description="classify: the model version used; embed: the embedding model; train: the model trained"
    )
    rows_total: int
    rows_done: int
    chunks_total: int
    chunks_done: int
    rate: float | None = None
    eta_seconds: float | None = None
    credits: int = Field(description="credits charged so far (rows actually classified or embedded)")
    error: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="train: the new version and its metrics")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, progress: JobProgress) -> JobPublic:
        job = progress.job
        params = job.params
        model = {
            "classify": f"{params.get('model')}@{params.get('version')}",
            "embed": params.get("model"),
        }.get(job.kind, params.get("name"))
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            model=model,
            rows_total=job.rows_total,
            rows_done=job.rows_done,
            chunks_total=job.chunks_total,
            chunks_done=job.chunks_done,
            rate=round(progress.rate, 3) if progress.rate is not None else None,
            eta_seconds=round(progress.eta_seconds, 3) if progress.eta_seconds is not None else None,
            credits=job.credits,
            error=job.error,
            result=job.result,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobList(BaseModel):
    """The caller's jobs, newest first."""

    object: Literal["list"] = "list"
    data: list[JobPublic]
