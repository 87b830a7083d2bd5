"""A tiny real engine for tests that must not depend on the linear engine: scores labels by keyword hits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.base import Engine, FloatArray, ProgressCallback
from labelwise.engines.factory import register_engine


class KeywordEngine(Engine):
    """Each label's score grows with the number of its training words in the text; softmax over labels."""

    name = "keyword"

    def __init__(self, sharpness: float = 2.0) -> None:
        self.sharpness = sharpness

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        words: dict[str, set[str]] = {}
        for text, labels in zip(train.texts, train.labels, strict=True):
            for label in labels:
                words.setdefault(label, set()).update(text.lower().split())
        self.classes_ = sorted(words)
        self.words_ = {label: sorted(words[label]) for label in self.classes_}
        self.task_ = TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL
        self.thresholds_ = np.full(len(self.classes_), 0.5) if multi_label else None
        return self

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        self.check_fitted()
        sets = [set(self.words_[label]) for label in self.classes_]
        hits = np.array([[len(set(t.lower().split()) & s) for s in sets] for t in texts], dtype=np.float64)
        if self.task_ is TaskType.MULTI_LABEL:
            return 1.0 / (1.0 + np.exp(-(hits - 0.5) * self.sharpness))
        logits = hits * self.sharpness
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, directory: Path) -> None:
        self.check_fitted()
        state = {"sharpness": self.sharpness, "words": self.words_, "task": self.task_.value}
        (directory / "keyword.json").write_text(json.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> Self:
        state = json.loads((directory / "keyword.json").read_text())
        engine = cls(sharpness=state["sharpness"])
        engine.words_ = state["words"]
        engine.classes_ = sorted(state["words"])
        engine.task_ = TaskType(state["task"])
        engine.thresholds_ = np.full(len(engine.classes_), 0.5) if engine.task_ is TaskType.MULTI_LABEL else None
        return engine

    def get_params(self) -> dict[str, Any]:
        return {"sharpness": self.sharpness}


register_engine("keyword", "tests.support.keyword_engine:KeywordEngine")


def fitted(labels_words: dict[str, list[str]] | None = None, multi_label: bool = False) -> KeywordEngine:
    """A fitted keyword engine; by default three labels about sports, money and weather."""
    pairs = labels_words or {
        "sports": ["goal match team", "player scored"],
        "money": ["bank loan interest", "price market stock"],
        "weather": ["rain sunny cloud", "storm wind snow"],
    }
    texts = [t for words in pairs.values() for t in words]
    labels = [(label,) for label, words in pairs.items() for _ in words]
    data = LabeledTexts(texts, labels)
    return KeywordEngine().fit(data, data, multi_label=multi_label)
