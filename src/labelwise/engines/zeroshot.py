"""The `zeroshot` engine: classify against label names (and descriptions) with no training data.

Each label becomes a short text: its humanized name through a template ("card_arrival" -> "card arrival"),
or "name: description" when it has a description, and is embedded once with the shared sentence encoder; a
text's scores are its cosine similarities to the label vectors, calibrated by mode:

- `exclusive`: softmax(cosine / T), rows sum to 1 (single-label);
- `confidence`: a sigmoid per label of its cosine and of its margins to the best and second-best cosine of
  the row, independent scores (multi-label, threshold 0.5): raw cosines are not comparable across label sets
  (measured: a sigmoid of the cosine alone gives every label about 0.2, ECE up to 0.30 on test splits), the
  margins are (ECE 0.004-0.11);
- `binary`: the `confidence` score turned into 0 or 1 at `threshold`;
- `multi_label`: like `confidence`; `fit` on labeled data also tunes per-label thresholds.

T, the sigmoid weights and the template were fitted on labeled train rows of several public datasets (never
their test splits) by bench/fit_zeroshot.py, which prints these constants and the calibration error they give.
No NLI cross-encoder ships as a package, so zero-shot is similarity-based.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, TaskType
from labelwise.encoder.windows import LONG_TEXT_CHOICES, LongText
from labelwise.engines.base import EncoderEngine, FloatArray, ProgressCallback, Targets, TextEncoder
from labelwise.engines.calibration import fit_calibrator, tune_thresholds
from labelwise.errors import InvalidRequest

logger = logging.getLogger(__name__)

MODES: tuple[str, ...] = ("exclusive", "confidence", "binary", "multi_label")

# Fitted by bench/fit_zeroshot.py on 1,000 shuffled train rows (seed 0) each of sst2, trec, emotion, banking77,
# sms_spam, clinc150 (single-label) and goemotions (multi-label), label names only, every dataset weighing the
# same. The template is the one of five with the best mean accuracy ("{label}" 54.6%, "This text is about
# {label}." 54.2%); T minimizes the mean negative log-likelihood of the exclusive scores; the weights minimize
# the mean logistic loss of the confidence scores.
TEMPLATE = "{label}"
DESCRIPTION_TEMPLATE = "{label}: {description}"
TEMPERATURE = 0.0639
# Weights of (cosine, cosine - best cosine of the row, cosine - second-best cosine of the row, 1).
CONFIDENCE_WEIGHTS = (-2.98, 6.21, 14.70, -0.27)

_LABEL_CACHE_SIZE = 4096


def humanize(label: str) -> str:
    """A label key as words: "card_arrival" -> "card arrival", "cardArrival" -> "card arrival"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label)
    return re.sub(r"[_\-\s]+", " ", spaced).strip().lower() or label


def label_text(label: str, description: str | None, template: str = TEMPLATE) -> str:
    """The text a label is embedded as."""
    name = humanize(label)
    if description:
        return DESCRIPTION_TEMPLATE.format(label=name, description=description.strip())
    return template.format(label=name)


def confidence_features(cosine: FloatArray) -> list[FloatArray]:
    """Per label: its cosine, its margin to the row's best and to the row's second-best cosine."""
    ranked = np.sort(cosine, axis=1)
    best = ranked[:, -1:]
    second = ranked[:, -2:-1] if cosine.shape[1] > 1 else best
    return [cosine, cosine - best, cosine - second]


def confidence(cosine: FloatArray, weights: Sequence[float]) -> FloatArray:
    """Independent per-label scores in (0, 1) from a (texts, labels) cosine matrix."""
    features = confidence_features(cosine)
    z = weights[3] + sum(w * f for w, f in zip(weights[:3], features, strict=True))
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def fit_confidence_weights(
    groups: Sequence[tuple[FloatArray, NDArray[np.bool_]]], start: Sequence[float] = CONFIDENCE_WEIGHTS
) -> tuple[float, float, float, float]:
    """Logistic-loss fit of the 4 confidence weights; each (cosine, gold) group (a dataset) weighs the same."""
    from scipy.optimize import minimize

    prepared = [(confidence_features(cosine), targets) for cosine, targets in groups]

    def loss(w: FloatArray) -> float:
        total = 0.0
        for features, targets in prepared:
            z = w[3] + sum(wi * f for wi, f in zip(w[:3], features, strict=True))
            total += float(np.mean(np.logaddexp(0.0, z) - targets * z))
        return total / len(prepared)

    found = minimize(loss, np.asarray(start, dtype=np.float64), method="L-BFGS-B")
    a, b, c, d = (float(v) for v in found.x)
    return a, b, c, d


class _LabelVectors:
    """A small LRU cache of label-text vectors: zero-shot requests repeat the same labels again and again."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._cache: OrderedDict[tuple[str, str], NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, encoder: TextEncoder, texts: list[str]) -> NDArray[np.float32]:
        keys = [(encoder.sha256, t) for t in texts]
        with self._lock:
            found = {k: self._cache[k] for k in keys if k in self._cache}
            for k in found:
                self._cache.move_to_end(k)
        missing = [k for k in dict.fromkeys(keys) if k not in found]
        if missing:
            vectors = encoder.encode([t for _, t in missing])
            with self._lock:
                for key, vector in zip(missing, vectors, strict=True):
                    found[key] = self._cache[key] = vector
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return np.stack([found[k] for k in keys])


_label_vectors = _LabelVectors(_LABEL_CACHE_SIZE)


class ZeroShotEngine(EncoderEngine):
    """Similarity to label texts, calibrated per mode (see the module docstring)."""

    name = "zeroshot"
    meta_file = "zeroshot.json"

    def __init__(
        self,
        *,
        mode: str = "exclusive",
        template: str = TEMPLATE,
        temperature: float = TEMPERATURE,
        confidence_weights: Sequence[float] = CONFIDENCE_WEIGHTS,
        threshold: float = 0.5,
        long_text: LongText = "mean",
        encoder: TextEncoder | None = None,
    ) -> None:
        self._encoder = encoder
        self.mode = mode
        self.template = template
        self.temperature = temperature
        self.confidence_weights = tuple(float(w) for w in confidence_weights)
        self.threshold = threshold
        self.long_text = long_text

    @classmethod
    def from_labels(
        cls,
        labels: Sequence[str] | dict[str, str],
        *,
        encoder: TextEncoder,
        mode: str = "exclusive",
        **params: Any,
    ) -> Self:
        """A ready engine for label names, or categories given as {key: description}; no training needed."""
        descriptions = dict(labels) if isinstance(labels, dict) else {str(label): "" for label in labels}
        if not descriptions:
            raise InvalidRequest("labels: give at least one label", param="labels")
        if mode == "exclusive" and len(descriptions) < 2:
            raise InvalidRequest("labels: exclusive scores need at least 2 labels", param="labels")
        engine = cls(mode=mode, encoder=encoder, **params)
        engine._check_hyperparameters()
        task = TaskType.SINGLE_LABEL if mode == "exclusive" else TaskType.MULTI_LABEL
        return engine._set_labels(list(descriptions), descriptions, task)

    def _check_hyperparameters(self) -> None:
        if self.mode not in MODES:
            raise InvalidRequest(f"mode: {self.mode!r}, choose one of {', '.join(MODES)}", param="mode")
        if "{label}" not in self.template:
            raise InvalidRequest("template: must contain {label}", param="template")
        if not 0.0 <= self.threshold <= 1.0:
            raise InvalidRequest(f"threshold: {self.threshold}, must be between 0 and 1", param="threshold")
        if self.long_text not in LONG_TEXT_CHOICES:
            raise InvalidRequest(f"long_text: choose one of {', '.join(LONG_TEXT_CHOICES)}", param="long_text")
        if len(self.confidence_weights) != 4:
            raise InvalidRequest("confidence_weights: give 4 numbers", param="confidence_weights")
        if self.temperature <= 0:
            raise InvalidRequest("temperature: must be positive", param="temperature")

    def _set_labels(self, classes: list[str], descriptions: dict[str, str], task: TaskType) -> Self:
        texts = [label_text(c, descriptions.get(c), self.template) for c in classes]
        self._label_vectors = _label_vectors.get(self.encoder, texts)
        self.classes_ = classes
        self.descriptions_ = {c: descriptions.get(c, "") for c in classes}
        self.task_ = task
        self.thresholds_ = None if task is TaskType.SINGLE_LABEL else np.full(len(classes), self.threshold)
        self._record_encoder()
        if task is TaskType.SINGLE_LABEL:
            self.mode_ = "exclusive"
        else:
            self.mode_ = "multi_label" if self.mode == "exclusive" else self.mode
        self.temperature_, self.confidence_weights_ = self.temperature, self.confidence_weights
        return self

    def _fit(self, train: LabeledTexts, validation: LabeledTexts, targets: Targets, step: ProgressCallback) -> Self:
        """Take the labels from `train`; tune the temperature (single-label) or the sigmoid and per-label
        thresholds (multi-label) on all the labeled rows, since no weights are learned from them."""
        task = targets.task
        self._set_labels(targets.classes, {}, task)
        texts = [*train.texts, *targets.val_texts]
        gold = np.vstack([targets.y_train, targets.y_val])
        step("embedding texts", 0.1)
        cosine = self._cosine(texts)
        step("calibrating", 0.8)
        if task is TaskType.SINGLE_LABEL:
            self.temperature_ = float(fit_calibrator("temperature", cosine, gold, task).to_dict()["temperature"])
        else:
            self.confidence_weights_ = fit_confidence_weights([(cosine, gold)], self.confidence_weights)
            self.thresholds_ = tune_thresholds(self._confidence(cosine), gold)
        step("done", 1.0)
        return self

    def _cosine(self, texts: Sequence[str]) -> FloatArray:
        vectors = self.encoder.encode(texts, long_text=self.long_text)
        # float64: a float32 product takes another BLAS path for one row than for several (see embedding._scores).
        cosine: FloatArray = vectors.astype(np.float64) @ self._label_vectors.astype(np.float64).T
        return cosine

    @property
    def label_vectors(self) -> NDArray[np.float32]:
        """The (labels, dimensions) vectors of the label texts, so a server can score vectors it batched itself."""
        self.check_fitted()
        return self._label_vectors

    def _confidence(self, cosine: FloatArray) -> FloatArray:
        return confidence(cosine, self.confidence_weights_)

    def proba_from_cosine(self, cosine: FloatArray) -> FloatArray:
        """Scores for the engine's mode from a (texts, labels) cosine matrix."""
        if self.task_ is TaskType.SINGLE_LABEL:
            logits = cosine / self.temperature_
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            out: FloatArray = exp / exp.sum(axis=1, keepdims=True)
            return out
        confidence = self._confidence(cosine)
        if self.mode_ == "binary":
            return (confidence >= self.threshold).astype(np.float64)
        return confidence

    def _proba(self, texts: Sequence[str]) -> FloatArray:
        """Scores for the mode: rows sum to 1 (exclusive), independent (confidence, multi_label) or 0/1 (binary)."""
        return self.proba_from_cosine(self._cosine(texts))

    def save(self, directory: Path) -> None:
        """Write `zeroshot.json` and the label vectors `label_vectors.npy`."""
        self.check_fitted()
        meta = {
            "task": self.task_.value,
            "classes": self.classes_,
            "descriptions": self.descriptions_,
            "thresholds": None if self.thresholds_ is None else self.thresholds_.tolist(),
            "encoder": self.encoder_,
            "hyperparameters": self._hyperparameters(),
            "fitted": self._fitted_constants(),
        }
        self._write_meta(directory, meta)
        np.save(directory / "label_vectors.npy", self._label_vectors, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        """Read a model written by `save` (the label vectors are not recomputed)."""
        with cls._loading(directory):
            meta = cls._read_meta(directory)
            engine = cls(**meta["hyperparameters"], encoder=encoder)
            classes = [str(c) for c in meta["classes"]]
            vectors = np.load(directory / "label_vectors.npy", allow_pickle=False)
            if vectors.ndim != 2 or vectors.shape[0] != len(classes):
                raise ValueError(f"label vectors of shape {vectors.shape} do not match {len(classes)} labels")
            thresholds = meta["thresholds"]
            recorded = dict(meta["encoder"])
        engine._check_encoder(recorded, directory.name)
        engine._label_vectors = vectors.astype(np.float32)
        engine.classes_ = classes
        engine.descriptions_ = dict(meta["descriptions"])
        engine.task_ = TaskType(meta["task"])
        engine.thresholds_ = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        fitted = meta["fitted"]
        engine.mode_ = str(fitted["mode"])
        engine.temperature_ = float(fitted["temperature"])
        engine.confidence_weights_ = tuple(float(w) for w in fitted["confidence_weights"])
        return engine

    def _fitted_params(self) -> dict[str, Any]:
        return {"encoder": self.encoder_, "fitted": self._fitted_constants()}

    def _fitted_constants(self) -> dict[str, Any]:
        return {
            "mode": self.mode_,
            "temperature": self.temperature_,
            "confidence_weights": list(self.confidence_weights_),
        }

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "template": self.template,
            "temperature": self.temperature,
            "confidence_weights": list(self.confidence_weights),
            "threshold": self.threshold,
            "long_text": self.long_text,
        }
