"""Bodies of the review queue's Label Studio routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LabelStudioExport(BaseModel):
    """Send a model's review queue to a Label Studio project."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(max_length=64, description="The model whose review queue is sent.")
    project: int = Field(ge=1, description="The Label Studio project's id.")
    limit: int = Field(default=100, ge=1, le=500, description="Most texts to send.")


class LabelStudioExported(BaseModel):
    project: int
    sent: int = Field(description="Tasks created in the project.")
    abstained: int = Field(description="Of them, predictions the model abstained on.")
    already_there: int = Field(description="Texts of the queue the project already had from an earlier export.")


class LabelStudioImport(BaseModel):
    """Bring a Label Studio project's finished annotations back as feedback."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(max_length=64, description="The model the annotations correct.")
    project: int = Field(ge=1, description="The Label Studio project's id.")


class LabelStudioImported(BaseModel):
    project: int
    imported: int = Field(description="Annotations stored as feedback.")
    unannotated: int = Field(description="Tasks without a finished annotation.")
    unknown_labels: dict[str, int] = Field(description="Choices that are not labels of the model, with their tasks.")
