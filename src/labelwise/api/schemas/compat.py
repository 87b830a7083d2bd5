"""Bodies of the compatible surfaces: vLLM's `POST /classify`, the categories API (`POST /text/classification`)
and the labels API (`POST /classification`). Their errors: `schemas/embeddings.OpenAIErrorResponse` (vLLM) and
`CategoriesError` here; the labels API answers errors in the native shape.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labelwise.api.error_shapes import CategoryCode

# --- vLLM ------------------------------------------------------------------------------------------------------


class _VllmOptions(BaseModel):
    """The options vLLM's pooling requests share."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(default=None, max_length=200, description="A trained model (`name`, `name@alias`, ...).")
    input: str | list[str] = Field(description="One text or a list of texts (up to `max_batch_texts`).")
    truncate_prompt_tokens: int | None = Field(
        default=None,
        ge=-1,
        description="Keep only the first N tokens of each text; -1 keeps up to the model's window. Tokens are "
        "whitespace-separated words (the engines have no tokenizer); the window is the most words a text of "
        "`max_text_chars` characters can hold. More than the window is a 400.",
    )
    use_activation: bool | None = Field(
        default=None,
        description="`false`: the scores before the activation, whose softmax (single-label models) or sigmoid "
        "(multi-label) is the default output: for these calibrated models, natural-log probabilities or log-odds.",
    )
    add_special_tokens: bool = Field(
        default=True,
        description="Accepted for compatibility: the engines count words and add no special tokens, so it changes "
        "neither the scores nor the usage.",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _text_not_token_ids(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, int | list) for item in items):
            raise ValueError("token ids are not accepted (the engines have no tokenizer): send text")
        return value

    @field_validator("truncate_prompt_tokens")
    @classmethod
    def _not_zero(cls, value: int | None) -> int | None:
        if value == 0:
            raise ValueError("must be -1 (the model's window) or at least 1")
        return value


class VllmClassifyRequest(_VllmOptions):
    """vLLM's classification request (also the body of `POST /invocations`)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"model": "banking77", "input": ["card?"]}]})


class VllmPoolingRequest(_VllmOptions):
    """vLLM's pooling request; the one task served is `classify`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model": "banking77", "input": "card?", "task": "classify"}]}
    )

    task: str = Field(default="classify", max_length=64, description="Only `classify`: the label scores.")
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="`float`: lists of numbers; `base64`: little-endian float32 bytes, base64."
    )


class VllmClassifyItem(BaseModel):
    index: int
    label: str = Field(description="The best-scoring label.")
    probs: list[float] = Field(description="One score per label, in the model's label order (`GET /v1/models/{name}`).")
    num_classes: int


class VllmUsage(BaseModel):
    prompt_tokens: int = Field(description="Whitespace-separated words of the input (the engines have no tokenizer).")
    total_tokens: int


class VllmClassifyResponse(BaseModel):
    """One result per input, in input order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "classify-5f0c9a1e2b3d4c5e6f708192a3b4c5d6",
                    "object": "list",
                    "created": 1738324800,
                    "model": "banking77",
                    "data": [{"index": 0, "label": "card_arrival", "probs": [0.02, 0.91, 0.07], "num_classes": 3}],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                }
            ]
        }
    )

    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[VllmClassifyItem]
    usage: VllmUsage


class VllmPoolingItem(BaseModel):
    index: int
    object: Literal["pooling"] = "pooling"
    data: list[float] | str = Field(description="The label scores in the model's label order, or their base64.")


class VllmPoolingResponse(BaseModel):
    """One pooled output per input, in input order."""

    id: str
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[VllmPoolingItem]
    usage: VllmUsage


# --- categories API --------------------------------------------------------------------------------------------


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(description="1 to 25 letters, digits or spaces; the key of `data` in the response.")
    description: str = Field(default="", description="Up to 150 characters; embedded with the key.")


class TextClassificationRequest(BaseModel):
    """Score one text against up to 25 categories."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "text": "My card has not arrived yet",
                    "type": "exclusive",
                    "categories": [
                        {"key": "card", "description": "cards, delivery, activation"},
                        {"key": "payments", "description": "transfers and top ups"},
                    ],
                }
            ]
        },
    )

    text: str = Field(description="1 to 2,000 characters.")
    type: Literal["exclusive", "confidence", "binary"] = Field(
        default="exclusive",
        description="`exclusive`: scores sum to 1; `confidence`: independent scores; `binary`: 0 or 1 each.",
    )
    threshold: float | None = Field(
        default=None,
        description="0 to 1. Categories scoring under it are left out of `data`; for `binary`, the score a "
        "category needs for 1 (default 0.5), and every category is kept.",
    )
    categories: list[CategoryIn] = Field(description="1 to 25 categories (2 or more for `exclusive`).")
    model: str | None = Field(
        default=None, max_length=200, description="A trained model whose labels are exactly the category keys."
    )


class TextClassificationMetadata(BaseModel):
    cost: int = Field(description="Credits this request cost.")


class TextClassificationResponse(BaseModel):
    """Each category's score."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"data": {"card": 0.93, "payments": 0.07}, "metadata": {"cost": 5}}]}
    )

    data: dict[str, float]
    metadata: TextClassificationMetadata


class CategoriesError(BaseModel):
    """Errors of the categories API."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": "text: 2,412 characters, the limit is 2,000", "code": "INPUT_TOO_LONG"}]
        }
    )

    error: str
    code: CategoryCode


# --- labels API ------------------------------------------------------------------------------------------------


class LabelsClassificationRequest(BaseModel):
    """Zero-shot classification of one text against label names."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"text": "The match went to extra time", "labels": ["sport", "politics"]}]},
    )

    text: str = Field(description="1 to `max_text_chars` characters.")
    labels: list[str] = Field(description="2 to 100 label names, each up to 100 characters.")
    multi_class: bool = Field(default=False, description="True: an independent score per label.")


class LabelsClassificationResponse(BaseModel):
    """Labels and their scores, best first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"labels": ["sport", "politics"], "scores": [0.9, 0.1]}]})

    labels: list[str]
    scores: list[float]
