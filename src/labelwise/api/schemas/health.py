"""Bodies of `/health` and `/ready`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = "ok"


class Readiness(BaseModel):
    """Whether this process should receive traffic, and why not."""

    ready: bool
    database: bool = Field(description="The database answered a trivial query.")
    models_loaded: bool = Field(description="The production models were loaded (or refused) at least once.")
    loaded: list[str] = Field(description="Model versions in memory, as `name:version`.")
    upstreams: dict[str, str] = Field(
        default_factory=dict,
        description="Language-model upstreams by name: `ok`, or `degraded` when one does not answer. A degraded "
        "upstream does not make the process unready: classification does not need it.",
    )
