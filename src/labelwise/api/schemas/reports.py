"""Bodies of the report routes: `GET /v1/models/{name}/versions/{version}/report` and its plots."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TrainingReport(BaseModel):
    """The training report written when the version was trained (`report.json`).

    Besides the fields below it carries what the trainer recorded: `params`, `calibration`, `data` (sizes, label
    counts, warnings) and more; new trainers may add fields, so unknown ones are passed through.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "tickets",
                    "version": "1.2.0",
                    "engine": "linear",
                    "task": "single_label",
                    "labels": ["account", "billing", "shipping"],
                    "created_at": "2025-01-31T12:00:00+00:00",
                    "training_seconds": 0.84,
                    "validation": {"n": 120, "accuracy": 0.91, "macro": {"precision": 0.9, "recall": 0.9, "f1": 0.9}},
                    "test": {"n": 120, "accuracy": 0.9, "ece": 0.03},
                }
            ]
        },
    )

    model: str | None = Field(default=None, description="The model name.")
    version: str | None = Field(default=None, description="The version this report belongs to.")
    engine: str | None = Field(default=None, description="The engine that was trained.")
    task: str | None = Field(default=None, description="`single_label` or `multi_label`.")
    labels: list[str] = Field(default_factory=list, description="Every label, in the model's column order.")
    created_at: str | None = Field(default=None, description="When training finished (ISO 8601).")
    training_seconds: float | None = None
    validation: dict[str, Any] | None = Field(default=None, description="Metrics on the validation split.")
    test: dict[str, Any] | None = Field(default=None, description="Metrics on the test split, when there was one.")


PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "The plot."}
}
