"""Bodies of `GET /v1/models` and `GET /v1/models/{name}`.

The list has the OpenAI shape (`{object: "list", data: [{id, object: "model", created, owned_by}]}`) so OpenAI
clients can list models; Labelwise adds each model's versions and aliases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.domain import ModelVersion

_VERSION_EXAMPLE: dict[str, Any] = {
    "version": "1.2.0",
    "engine": "linear",
    "task": "single_label",
    "aliases": ["production", "latest"],
    "created_at": "2025-01-31T12:00:00Z",
}


class VersionSummary(BaseModel):
    version: str
    engine: str
    task: str
    aliases: list[str]
    created_at: datetime


class VersionDetail(VersionSummary):
    labels: list[str] = Field(description="Every label, in the order of the model's probability columns.")
    metrics: dict[str, Any] = Field(description="Evaluation metrics recorded when the version was trained.")
    thresholds: list[float] | None = Field(description="Per-label decision thresholds (multi-label models).")


class ModelSummary(BaseModel):
    id: str = Field(description="The model name, usable as `model`.")
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time of the newest version.")
    owned_by: str = "labelwise"
    aliases: dict[str, str] = Field(description="Alias -> version.")
    versions: list[VersionSummary] = Field(description="Newest first.")


class ModelCard(BaseModel):
    """A model that is not trained here, listed for OpenAI clients: the sentence encoder behind `/v1/embeddings`."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time this server started.")
    owned_by: str = "labelwise"


class ModelList(BaseModel):
    """Every model with its versions and aliases."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "list",
                    "data": [
                        {
                            "id": "banking77",
                            "object": "model",
                            "created": 1738324800,
                            "owned_by": "labelwise",
                            "aliases": {"production": "1.2.0", "latest": "1.2.0"},
                            "versions": [_VERSION_EXAMPLE],
                        }
                    ],
                }
            ]
        }
    )

    object: Literal["list"] = "list"
    data: list[ModelSummary | ModelCard] = Field(description="Trained models, then the embedding model.")


class ModelDetail(ModelSummary):
    """One model: every version with its labels in order, metrics and aliases."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "banking77",
                    "object": "model",
                    "created": 1738324800,
                    "owned_by": "labelwise",
                    "aliases": {"production": "1.2.0", "latest": "1.2.0"},
                    "versions": [
                        {
                            **_VERSION_EXAMPLE,
                            "labels": ["activate_my_card", "age_limit", "card_arrival"],
                            "metrics": {"accuracy": 0.89, "macro_f1": 0.88},
                            "thresholds": None,
                        }
                    ],
                }
            ]
        }
    )

    versions: list[VersionDetail] = Field(description="Newest first.")  # type: ignore[assignment]


def _aliases(versions: list[ModelVersion]) -> dict[str, str]:
    return {alias: v.version for v in versions for alias in v.aliases}


def _summary(v: ModelVersion) -> VersionSummary:
    return VersionSummary(
        version=v.version, engine=v.engine, task=v.task.value, aliases=v.aliases, created_at=v.created_at
    )


def model_summary(name: str, versions: list[ModelVersion]) -> ModelSummary:
    return ModelSummary(
        id=name,
        created=int(versions[0].created_at.timestamp()),
        aliases=_aliases(versions),
        versions=[_summary(v) for v in versions],
    )


def model_detail(name: str, versions: list[ModelVersion]) -> ModelDetail:
    details = [
        VersionDetail(**_summary(v).model_dump(), labels=v.labels, metrics=v.metrics, thresholds=v.thresholds)
        for v in versions
    ]
    return ModelDetail(
        id=name, created=int(versions[0].created_at.timestamp()), aliases=_aliases(versions), versions=details
    )
