"""The `llm` engine: a language model behind an OpenAI-compatible upstream, asked to choose among the labels.

Nothing is learned: `fit` keeps the label set (from the training data), up to `shots` few-shot examples per label
(the first ones of the training split) and the upstream model name. Stored like any version, so it is versioned,
aliased, monitored, and served on every surface; the server classifies with it asynchronously through the shared
upstream client (services/llm_classify.py), while `predict_proba` here, which training's evaluation and
`labelwise eval` call, asks the upstream configured for the process (`labelwise.llm.configure_upstream`) one text
at a time. How the question is put and the answer read: llm/prompting.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.base import Engine, FloatArray, ProgressCallback, TextEncoder
from labelwise.errors import ConfigError, InvalidRequest, ModelLoadError, UpstreamRejected
from labelwise.llm.prompting import FORMATS, Example, LabelSet, request, scores_of
from labelwise.llm.upstream import BlockingUpstream, configured_upstream

FORMAT_VERSION = 1


class LLMEngine(Engine):
    """Zero-shot (or few-shot) classification by a language model; single-label."""

    name = "llm"

    def __init__(self, model: str | None = None, shots: int = 2, descriptions: Mapping[str, str] | None = None) -> None:
        self.model = model
        self.shots = shots
        self.descriptions = dict(descriptions or {})

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        if multi_label or any(len(labels) != 1 for labels in train.labels):
            raise InvalidRequest("engine: llm chooses one label per text; multi-label data needs another engine")
        model = self.model or _config_model()
        if not model:
            raise InvalidRequest("engine: llm needs an upstream model (set LABELWISE_LLM_MODEL)")
        self.classes_ = sorted({labels[0] for labels in train.labels})
        if len(self.classes_) < 2:
            raise InvalidRequest("engine: llm needs at least 2 labels to choose from")
        examples: list[Example] = []
        counts = dict.fromkeys(self.classes_, 0)
        for text, labels in zip(train.texts, train.labels, strict=True):
            if counts[labels[0]] < self.shots:
                counts[labels[0]] += 1
                examples.append(Example(text, labels[0]))
        self.examples_ = tuple(examples)
        self.model_ = model
        self.descriptions_ = {k: v for k, v in self.descriptions.items() if k in self.classes_}
        self.task_ = TaskType.SINGLE_LABEL
        self.thresholds_ = None
        return self

    def label_set(self) -> LabelSet:
        self.check_fitted()
        return LabelSet({c: self.descriptions_.get(c, "") for c in self.classes_}, self.examples_)

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Asks the configured upstream, one text at a time (the server does not call this: see the docstring)."""
        label_set = self.label_set()
        config = configured_upstream()
        if config is None:
            raise ConfigError("the llm engine needs a language-model upstream: set LABELWISE_LLM_URL")
        upstream = BlockingUpstream(config)
        out = np.zeros((len(texts), len(self.classes_)), dtype=np.float64)
        try:
            for i, text in enumerate(texts):
                out[i] = self._ask(upstream, text, label_set)
        finally:
            upstream.close()
        return out

    def _ask(self, upstream: BlockingUpstream, text: str, label_set: LabelSet) -> FloatArray:
        for style in FORMATS:
            try:
                return scores_of(upstream.chat(request(text, label_set, self.model_, style)), label_set.names)
            except UpstreamRejected:
                if style == FORMATS[-1]:
                    raise
        raise AssertionError("unreachable")

    def save(self, directory: Path) -> None:
        """Write `llm.json`: the labels, their descriptions, the examples and the upstream model."""
        self.check_fitted()
        meta = {
            "engine": self.name,
            "format": FORMAT_VERSION,
            "hyperparameters": self._hyperparameters(),
            "classes": self.classes_,
            "descriptions": self.descriptions_,
            "examples": [{"text": e.text, "label": e.label} for e in self.examples_],
            "model": self.model_,
        }
        (directory / "llm.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        """Read `llm.json` (the encoder is not used: the model is the upstream's)."""
        try:
            meta = json.loads((directory / "llm.json").read_text(encoding="utf-8"))
            if meta.get("engine") != cls.name or meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"not an llm model of format {FORMAT_VERSION}")
            engine = cls(**meta["hyperparameters"])
            engine.classes_ = [str(c) for c in meta["classes"]]
            engine.descriptions_ = {str(k): str(v) for k, v in meta["descriptions"].items()}
            engine.examples_ = tuple(Example(str(e["text"]), str(e["label"])) for e in meta["examples"])
            engine.model_ = str(meta["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"llm model at {directory} is unreadable: {exc}") from exc
        engine.task_ = TaskType.SINGLE_LABEL
        engine.thresholds_ = None
        return engine

    def _hyperparameters(self) -> dict[str, Any]:
        return {"model": self.model, "shots": self.shots, "descriptions": self.descriptions}

    def get_params(self) -> dict[str, Any]:
        params = self._hyperparameters()
        if self.is_fitted():
            params["upstream_model"] = self.model_
            params["examples"] = len(self.examples_)
        return params


def _config_model() -> str | None:
    config = configured_upstream()
    return None if config is None else config.model
