"""Request and response bodies of `POST /v1/classify` and `POST /v1/batch`.

Field names follow the tutorial contract Labelwise grew from (`text`, `texts`, `top_k`, `threshold`, `labels`,
`index`, `model_version`, `latency_ms`), so its clients keep working; `model`, `predicted` and `request_id` are
additions. Unknown fields are refused, so a misspelt option is an error instead of being silently ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labelwise.errors import InvalidRequest

MODEL_FIELD_DESCRIPTION = (
    "The model: `name` (its production alias), `name@alias` or `name:version`. When absent: the configured "
    "default model, else the only model there is."
)
_LATER = "Not available yet: sending it is answered 400."


class LabelScore(BaseModel):
    """One label and its calibrated score in [0, 1]."""

    label: str
    score: float


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(default=None, max_length=200, description=MODEL_FIELD_DESCRIPTION)
    top_k: int = Field(default=3, ge=1, le=1000, description="How many of the best labels to return.")
    threshold: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Labels scoring under this are left out of `labels`."
    )
    labels: Any = Field(default=None, description="Zero-shot label names. " + _LATER)
    categories: Any = Field(default=None, description="Zero-shot categories `[{key, description}]`. " + _LATER)
    multi_label: Any = Field(default=None, description="Zero-shot multi-label switch. " + _LATER)
    explain: Any = Field(default=None, description="Per-word explanations. " + _LATER)

    def refuse_unavailable(self) -> None:
        """`InvalidRequest` naming the first option sent that this server cannot honour yet."""
        for name in ("labels", "categories", "multi_label", "explain"):
            if getattr(self, name) is not None:
                what = "explanations are" if name == "explain" else "zero-shot classification is"
                raise InvalidRequest(f"{name}: {what} not available yet", param=name)


class ClassifyRequest(_Options):
    """Classify one text."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "My card has not arrived yet", "model": "banking77", "top_k": 3}]}
    )

    text: str = Field(description="The text to classify (1 to `max_text_chars` characters, 10,000 by default).")


class ClassifyResponse(BaseModel):
    """The best labels for the text, the model's decision, and which model version answered."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "labels": [
                        {"label": "card_arrival", "score": 0.91},
                        {"label": "card_delivery_estimate", "score": 0.05},
                        {"label": "lost_or_stolen_card", "score": 0.01},
                    ],
                    "predicted": ["card_arrival"],
                    "top_k": 3,
                    "model": "banking77",
                    "model_version": "1.2.0",
                    "latency_ms": 0.84,
                    "request_id": "req_3f2a9c0d1e7b4a5c6d8e9f01",
                }
            ]
        }
    )

    labels: list[LabelScore] = Field(description="Best first; at most `top_k`, none under `threshold`.")
    predicted: list[str] = Field(
        description="The model's decision: the best label, or every label over its tuned threshold (multi-label)."
    )
    top_k: int
    model: str
    model_version: str
    latency_ms: float = Field(description="Time spent in the server, in milliseconds.")
    request_id: str


class BatchRequest(_Options):
    """Classify several texts in one call."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"texts": ["My card has not arrived yet", "How do I top up by bank transfer?"], "top_k": 2}]
        }
    )

    texts: list[str] = Field(
        min_length=1, description="1 to `max_batch_texts` texts (512 by default), each 1 to `max_text_chars` long."
    )


class BatchItem(BaseModel):
    index: int = Field(description="Position of the text in `texts`.")
    labels: list[LabelScore]
    predicted: list[str]


class BatchResponse(BaseModel):
    """One result per input text, in input order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "index": 0,
                            "labels": [{"label": "card_arrival", "score": 0.91}],
                            "predicted": ["card_arrival"],
                        },
                        {
                            "index": 1,
                            "labels": [{"label": "top_up_by_bank_transfer_charge", "score": 0.62}],
                            "predicted": ["top_up_by_bank_transfer_charge"],
                        },
                    ],
                    "model": "banking77",
                    "model_version": "1.2.0",
                    "request_id": "req_3f2a9c0d1e7b4a5c6d8e9f01",
                }
            ]
        }
    )

    results: list[BatchItem]
    model: str
    model_version: str
    request_id: str
