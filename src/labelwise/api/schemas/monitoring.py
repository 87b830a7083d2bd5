"""Bodies of the monitoring routes: feedback, the review queue and drift."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from labelwise.monitoring.drift import DriftReport
from labelwise.storage.monitoring import FeedbackEntry, LoggedPrediction


class FeedbackCreate(BaseModel):
    """A correction: the right labels for a logged request (`request_id`, and `index` for a batch) or a text."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"request_id": "req_3f2a9c0d1e7b4a5c6d8e9f01", "labels": ["card_arrival"]}]},
    )

    request_id: str | None = Field(default=None, max_length=64)
    index: int = Field(default=0, ge=0, description="Which text of a `/v1/batch` request.")
    text: str | None = Field(default=None, min_length=1, max_length=100_000)
    labels: list[str] = Field(min_length=1, max_length=100)
    model: str | None = Field(default=None, max_length=64, description="Default: the model of the logged request.")


class FeedbackPublic(BaseModel):
    """The stored correction (the text itself is never echoed)."""

    request_id: str | None
    model: str | None
    labels: list[str]
    text_sha256: str
    text_known: bool = Field(description="False when the text was not logged: the correction cannot train.")
    created_at: datetime

    @classmethod
    def of(cls, entry: FeedbackEntry) -> FeedbackPublic:
        return cls(
            request_id=entry.request_id,
            model=entry.model,
            labels=entry.labels,
            text_sha256=entry.text_sha256,
            text_known=entry.raw_text is not None,
            created_at=entry.created_at,
        )


class ScoredLabel(BaseModel):
    label: str
    score: float


class ReviewItem(BaseModel):
    """A logged prediction to review, least sure first."""

    request_id: str
    index: int
    created_at: datetime
    model: str
    model_version: str
    text: str
    labels: list[ScoredLabel]
    predicted: list[str]
    abstained: bool = Field(description="The model made no decision (its abstain rule fired); listed first.")
    confidence: float
    margin: float

    @classmethod
    def of(cls, row: LoggedPrediction) -> ReviewItem:
        return cls(
            request_id=row.request_id,
            index=row.item,
            created_at=row.created_at,
            model=row.model,
            model_version=row.version,
            text=row.raw_text or "",
            labels=[ScoredLabel(label=label, score=score) for label, score in row.labels],
            predicted=row.predicted,
            abstained=not row.predicted,
            confidence=row.confidence,
            margin=row.margin,
        )


class ReviewResponse(BaseModel):
    items: list[ReviewItem] = Field(description="Only predictions logged with their raw text.")


class DriftResponse(BaseModel):
    """Drift of a model's production version over a window, next to its validation baseline."""

    model: str
    model_version: str
    window_seconds: int
    since: datetime
    predictions: int = Field(description="Logged predictions in the window (after sampling).")
    psi: float | None = Field(description="Population stability index of predicted labels; None without data.")
    status: str = Field(description="no_data, stable (PSI <= 0.1), moderate (<= 0.25) or large.")
    mean_confidence: float | None
    baseline_mean_confidence: float | None
    low_confidence_share: float | None = Field(description="Share of top-1 scores at or under 7/15.")
    baseline_low_confidence_share: float | None
    distribution: dict[str, float]
    baseline_distribution: dict[str, float]

    @classmethod
    def of(cls, report: DriftReport) -> DriftResponse:
        data = report.to_dict()
        data["model_version"] = data.pop("version")
        return cls(**data)
