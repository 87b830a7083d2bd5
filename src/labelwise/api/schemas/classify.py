"""Request and response bodies of `POST /v1/classify` and `POST /v1/batch`.

Field names follow the tutorial contract Labelwise grew from (`text`, `texts`, `top_k`, `threshold`, `labels`,
`index`, `model_version`, `latency_ms`), so its clients keep working; `model`, `predicted` and `request_id` are
additions. Unknown fields are refused, so a misspelt option is an error instead of being silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.errors import InvalidRequest

MODEL_FIELD_DESCRIPTION = (
    "The model: `name` (its production alias), `name@alias` or `name:version`. When absent: the configured "
    "default model, else the only model there is."
)


class Category(BaseModel):
    """A zero-shot label with a description, which is embedded with it ("key: description")."""

    model_config = ConfigDict(extra="forbid", strict=True)

    key: str = Field(description="The label returned in `labels` (1 to 100 characters).")
    description: str = Field(default="", description="What the label means (up to 500 characters).")


class LabelScore(BaseModel):
    """One label and its calibrated score in [0, 1]."""

    label: str
    score: float


class ClassifyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(default=None, max_length=200, description=MODEL_FIELD_DESCRIPTION)
    top_k: int = Field(default=3, ge=1, le=1000, description="How many of the best labels to return.")
    threshold: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Labels scoring under this are left out of `labels`."
    )
    labels: list[str] | None = Field(
        default=None,
        description="Zero-shot: classify against these label names (2 to 100, each up to 100 characters) instead "
        "of a trained model; leave `model` out. The response names the model `zeroshot`.",
    )
    categories: list[Category] | None = Field(
        default=None, description="Zero-shot with descriptions: `[{key, description}]`, instead of `labels`."
    )
    multi_label: bool | None = Field(
        default=None,
        description="Zero-shot only. False (default): scores sum to 1 and the best label is predicted. True: an "
        "independent score per label, and every label scoring 0.5 or more is predicted.",
    )
    explain: bool | None = Field(
        default=None,
        description="Per returned label, the words or n-grams of the text that raised its score most "
        "(`/v1/classify` only).",
    )
    min_confidence: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Abstain (empty `predicted`, `abstained: true`) when the best score is under this. Default: "
        "the number the model version tuned on its validation data (none for zero-shot and older versions).",
    )
    min_margin: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Abstain when the best score leads the second by less than this. Default: the model "
        "version's tuned number.",
    )
    method: Literal["encoder", "llm"] | None = Field(
        default=None,
        description="Zero-shot only. `encoder` (default): similarity with the sentence encoder. `llm`: the "
        "language model behind the server chooses among the labels (its answer constrained to them); `model` may "
        "then name the upstream model. The response names the model `llm`, versioned by the upstream model.",
    )

    def refuse_unavailable(self) -> None:
        """`InvalidRequest` naming the first option that does not go with the others."""
        if self.labels is not None and self.categories is not None:
            raise InvalidRequest("categories: give either labels or categories, not both", param="categories")
        zero_shot = self.labels is not None or self.categories is not None
        if self.method is not None and not zero_shot:
            raise InvalidRequest("method: only for zero-shot (send labels or categories)", param="method")
        if self.method == "llm" and self.multi_label:
            raise InvalidRequest("multi_label: the language model chooses one label", param="multi_label")
        if zero_shot and self.model is not None and self.method != "llm":
            name = "labels" if self.labels is not None else "categories"
            raise InvalidRequest(f"model: leave it out when sending {name} (zero-shot)", param="model")
        if self.multi_label is not None and not zero_shot:
            raise InvalidRequest("multi_label: only for zero-shot (send labels or categories)", param="multi_label")
        if zero_shot and self.explain:
            raise InvalidRequest("explain: not available for zero-shot classification", param="explain")

    def zero_shot_labels(self) -> list[tuple[str, str]] | None:
        """The zero-shot labels as sent, as (name, description) pairs; None for a trained model."""
        if self.categories is not None:
            return [(c.key, c.description) for c in self.categories]
        return None if self.labels is None else [(name, "") for name in self.labels]

    def abstain_overrides(self) -> dict[str, float | None]:
        """The abstain numbers the request gives in place of the model's (None: the model's own)."""
        return {"min_confidence": self.min_confidence, "min_margin": self.min_margin}

    @property
    def zero_shot_param(self) -> str:
        return "categories" if self.categories is not None else "labels"

    @property
    def zero_shot_mode(self) -> str:
        return "multi_label" if self.multi_label else "exclusive"


class ClassifyRequest(ClassifyOptions):
    """Classify one text."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "My card has not arrived yet", "model": "banking77", "top_k": 3}]}
    )

    text: str = Field(description="The text to classify (1 to `max_text_chars` characters, 10,000 by default).")


class ExplanationTerm(BaseModel):
    """A word or n-gram of the text (lower case) and how much it raised the label's score."""

    term: str
    weight: float


class Explanation(BaseModel):
    """Why a label scored as it did: `linear` weights are raw-score contributions (coefficient x tf-idf),
    `leave_one_out` weights are the drop in probability when the word is left out."""

    label: str
    method: str
    terms: list[ExplanationTerm]


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
        description="The model's decision: the best label, or every label over its tuned threshold (multi-label); "
        "empty when the model abstained."
    )
    abstained: bool = Field(
        default=False,
        description="True when the model was not sure enough to decide (its abstain rule fired): `predicted` is "
        "empty, `labels` still ranks the labels.",
    )
    top_k: int
    model: str
    model_version: str
    latency_ms: float = Field(description="Time spent in the server, in milliseconds.")
    request_id: str
    explanations: list[Explanation] | None = Field(default=None, description="Present when `explain` was true.")


class BatchRequest(ClassifyOptions):
    """Classify several texts in one call."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"texts": ["My card has not arrived yet", "How do I top up by bank transfer?"], "top_k": 2}]
        }
    )

    texts: list[str] = Field(
        min_length=1, description="1 to `max_batch_texts` texts (512 by default), each 1 to `max_text_chars` long."
    )

    def refuse_unavailable(self) -> None:
        """As for one text; explanations are for `/v1/classify` only (their cost grows with every text)."""
        super().refuse_unavailable()
        if self.explain:
            raise InvalidRequest("explain: explanations are available on /v1/classify only", param="explain")


class BatchItem(BaseModel):
    index: int = Field(description="Position of the text in `texts`.")
    labels: list[LabelScore]
    predicted: list[str]
    abstained: bool = Field(default=False, description="As in `/v1/classify`: no decision for this text.")


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
