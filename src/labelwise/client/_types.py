"""Typed results of the client: frozen dataclasses read from the server's JSON with `from_json`.

Fields follow the response bodies of the API (see `labelwise.api.schemas`); a body that does not fit raises
`KeyError`, `TypeError` or `ValueError`, which the client turns into a `LabelwiseAPIError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True)
class LabelScore:
    """One label and its calibrated score in [0, 1]."""

    label: str
    score: float

    @classmethod
    def from_json(cls, data: Json) -> LabelScore:
        return cls(label=str(data["label"]), score=float(data["score"]))


def _scores(items: list[Json]) -> list[LabelScore]:
    return [LabelScore.from_json(item) for item in items]


@dataclass(frozen=True)
class Classification:
    """The answer of `POST /v1/classify`: the best labels (best first), the model's decision, who answered."""

    labels: list[LabelScore]
    predicted: list[str]
    top_k: int
    model: str
    model_version: str
    latency_ms: float
    request_id: str
    explanations: list[Json] | None = None

    @classmethod
    def from_json(cls, data: Json) -> Classification:
        return cls(
            labels=_scores(data["labels"]),
            predicted=[str(p) for p in data["predicted"]],
            top_k=int(data["top_k"]),
            model=str(data["model"]),
            model_version=str(data["model_version"]),
            latency_ms=float(data["latency_ms"]),
            request_id=str(data["request_id"]),
            explanations=data.get("explanations"),
        )


@dataclass(frozen=True)
class BatchItem:
    """The result for one text of a batch; `index` is its position in the texts sent."""

    index: int
    labels: list[LabelScore]
    predicted: list[str]

    @classmethod
    def from_json(cls, data: Json) -> BatchItem:
        return cls(
            index=int(data["index"]), labels=_scores(data["labels"]), predicted=[str(p) for p in data["predicted"]]
        )


@dataclass(frozen=True)
class BatchResult:
    """The answer of `POST /v1/batch`: one result per text, in input order."""

    results: list[BatchItem]
    model: str
    model_version: str
    request_id: str

    @classmethod
    def from_json(cls, data: Json) -> BatchResult:
        return cls(
            results=[BatchItem.from_json(item) for item in data["results"]],
            model=str(data["model"]),
            model_version=str(data["model_version"]),
            request_id=str(data["request_id"]),
        )


@dataclass(frozen=True)
class EmbeddingUsage:
    prompt_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Embeddings:
    """The answer of `POST /v1/embeddings` (OpenAI shape): one vector per input, in input order."""

    vectors: list[list[float]]
    model: str
    usage: EmbeddingUsage | None = None

    @classmethod
    def from_json(cls, data: Json) -> Embeddings:
        items = sorted(data["data"], key=lambda item: int(item["index"]))
        usage = data.get("usage")
        return cls(
            vectors=[[float(x) for x in item["embedding"]] for item in items],
            model=str(data["model"]),
            usage=(
                EmbeddingUsage(int(usage.get("prompt_tokens", 0)), int(usage.get("total_tokens", 0)))
                if isinstance(usage, dict)
                else None
            ),
        )


@dataclass(frozen=True)
class VersionSummary:
    """One version of a model."""

    version: str
    engine: str
    task: str
    aliases: list[str]
    created_at: datetime

    @classmethod
    def _fields(cls, data: Json) -> Json:
        return {
            "version": str(data["version"]),
            "engine": str(data["engine"]),
            "task": str(data["task"]),
            "aliases": [str(a) for a in data["aliases"]],
            "created_at": datetime.fromisoformat(str(data["created_at"])),
        }

    @classmethod
    def from_json(cls, data: Json) -> VersionSummary:
        return cls(**cls._fields(data))


@dataclass(frozen=True)
class VersionDetail(VersionSummary):
    """One version with its labels in the order of its probability columns, its metrics and thresholds."""

    labels: list[str] = field(default_factory=list)
    metrics: Json = field(default_factory=dict)
    thresholds: list[float] | None = None

    @classmethod
    def from_json(cls, data: Json) -> VersionDetail:
        thresholds = data.get("thresholds")
        return cls(
            **cls._fields(data),
            labels=[str(label) for label in data["labels"]],
            metrics=dict(data.get("metrics") or {}),
            thresholds=[float(t) for t in thresholds] if thresholds is not None else None,
        )


def _model_fields(data: Json) -> Json:
    """The fields both model answers share: the name (`id`), creation time, owner and aliases."""
    return {
        "id": str(data["id"]),
        "created": int(data["created"]),
        "owned_by": str(data.get("owned_by", "labelwise")),
        "aliases": {str(k): str(v) for k, v in data.get("aliases", {}).items()},
    }


@dataclass(frozen=True)
class _ModelFields:
    id: str
    created: int
    owned_by: str
    aliases: dict[str, str]


@dataclass(frozen=True)
class ModelSummary(_ModelFields):
    """A model of `GET /v1/models`: its name (`id`), aliases (alias -> version) and versions, newest first."""

    versions: list[VersionSummary]

    @classmethod
    def from_json(cls, data: Json) -> ModelSummary:
        versions = [VersionSummary.from_json(v) for v in data.get("versions", [])]
        return cls(**_model_fields(data), versions=versions)


@dataclass(frozen=True)
class ModelDetail(_ModelFields):
    """A model of `GET /v1/models/{name}`: every version with labels, metrics and thresholds."""

    versions: list[VersionDetail]

    @classmethod
    def from_json(cls, data: Json) -> ModelDetail:
        return cls(**_model_fields(data), versions=[VersionDetail.from_json(v) for v in data["versions"]])


@dataclass(frozen=True)
class UsageCounts:
    """Successful billed requests, their texts, characters and credits."""

    requests: int
    texts: int
    characters: int
    credits: int

    @classmethod
    def _fields(cls, data: Json) -> Json:
        return {k: int(data[k]) for k in ("requests", "texts", "characters", "credits")}

    @classmethod
    def from_json(cls, data: Json) -> UsageCounts:
        return cls(**cls._fields(data))


@dataclass(frozen=True)
class UsageDay(UsageCounts):
    """The counts of one key (its prefix), UTC day and route."""

    key: str = ""
    day: date = date.min
    route: str = ""

    @classmethod
    def from_json(cls, data: Json) -> UsageDay:
        return cls(
            **cls._fields(data),
            key=str(data["key"]),
            day=date.fromisoformat(str(data["day"])),
            route=str(data["route"]),
        )


@dataclass(frozen=True)
class Usage:
    """The answer of `GET /v1/usage`: rows per key, day and route between `start` and `end` (included)."""

    start: date
    end: date
    data: list[UsageDay]
    total: UsageCounts

    @classmethod
    def from_json(cls, data: Json) -> Usage:
        return cls(
            start=date.fromisoformat(str(data["from"])),
            end=date.fromisoformat(str(data["to"])),
            data=[UsageDay.from_json(row) for row in data["data"]],
            total=UsageCounts.from_json(data["total"]),
        )
