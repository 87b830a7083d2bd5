"""Body of `PUT /v1/models/{name}/aliases/{alias}`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AliasUpdate(BaseModel):
    """Which version the alias should name."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"version": "1.2.0"}]})

    version: str = Field(max_length=40, description="An existing version of the model, `MAJOR.MINOR.PATCH`.")
