"""The engine contract every model backend follows (scikit-learn style).

- `__init__` stores hyperparameters only; nothing is learned or loaded there.
- `fit(train, validation)` learns from `train`, uses `validation` to choose hyperparameters, calibrate
  probabilities and tune per-label thresholds, and returns `self`.
- Learned state ends in `_`: `classes_` (label order of every probability column), `task_`, `thresholds_`.
- `predict_proba(texts)` returns an array of shape (len(texts), len(classes_)) with values in [0, 1]; rows sum
  to 1 for single-label models; multi-label columns are independent.
- `save(directory)` writes only data files (arrays and JSON, never pickle); `load(directory)` reads them back.
- Calling `predict_proba` or `save` before `fit`/`load` raises `NotFittedError`.
- Engines that need the sentence encoder (`needs_encoder`) are given it: `encoder=` to `__init__` and `load`.
  Nothing here reaches for a process-wide one; the composition root decides which encoder a process runs.
- `explanation` says which explanation method fits the engine (see `engines/explain.py`); `explainer()` is the
  engine whose method applies (an `auto` model answers with its chosen candidate).

`HeadEngine` is the base of the "features + head + calibrator" engines: an engine supplies its features and its
head; the data and label checks, calibration and threshold tuning (`engines/head.py`), the metadata file and
the loading errors are written once, here.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, LabelScore, Prediction, TaskType
from labelwise.encoder.windows import LongText
from labelwise.engines.head import Head, load_head, save_head
from labelwise.engines.targets import BoolArray, classes_of, indicator, task_of, validation_rows
from labelwise.errors import ConfigError, ModelLoadError, NotFittedError

if TYPE_CHECKING:
    from labelwise.engines._tfidf import TfidfFeaturizer

logger = logging.getLogger(__name__)

# Called with (step description, fraction done in [0, 1]) during long fits.
ProgressCallback = Callable[[str, float], None]

FloatArray = NDArray[np.float64]

# "linear": a score is a sum of per-feature weights, so each word's share is read off the weights (fast);
# "leave_one_out": the text is scored again without each word (any engine, one prediction per word).
ExplanationMethod = Literal["linear", "leave_one_out"]


class TextEncoder(Protocol):
    """What engines need of a sentence encoder (`labelwise.encoder.Encoder` is one)."""

    @property
    def model_id(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def dimensions(self) -> int: ...

    def encode(
        self, texts: Sequence[str], *, long_text: LongText = "mean", batch_size: int = 64
    ) -> NDArray[np.float32]: ...


class Engine(ABC):
    """A text classifier backend. Subclasses set `name` and implement the abstract methods."""

    name: ClassVar[str]
    needs_encoder: ClassVar[bool] = False
    explanation: ClassVar[ExplanationMethod] = "leave_one_out"
    # A resumable engine writes checkpoints into `checkpoint_dir` when it is set (by the caller, never from
    # hyperparameters) and continues from the last one when a fit of the same data is started again.
    resumable: ClassVar[bool] = False
    checkpoint_dir: Path | None = None

    classes_: list[str]
    task_: TaskType
    thresholds_: FloatArray | None
    # Set by `fit` when the final model also learned from the validation rows (a refit): their calibrated
    # probabilities and gold indicators from before the refit, the held-out scores the abstain rule is tuned on
    # (`training.pipeline`). None: the validation rows stay held out, so their scores can be computed after fit.
    heldout_: tuple[FloatArray, BoolArray] | None = None

    @abstractmethod
    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        """Learn from `train`; choose hyperparameters, calibrate and tune thresholds on `validation`."""

    @abstractmethod
    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Calibrated scores, one row per text, one column per entry of `classes_`."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write the learned state into `directory` (which exists and is empty) as data files only."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        """Read a model written by `save` (`encoder`: the sentence encoder, for engines that need one)."""

    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as given to `__init__` plus the ones chosen during `fit` (JSON-serializable)."""

    # Shared behaviour -------------------------------------------------------------------------------------

    def is_fitted(self) -> bool:
        return hasattr(self, "classes_")

    def check_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    def decide(self, proba: FloatArray) -> list[list[str]]:
        """The model's own decision per row: argmax, or every label over its threshold for multi-label."""
        self.check_fitted()
        classes = self.classes_
        if self.task_ is TaskType.SINGLE_LABEL or self.thresholds_ is None:
            return [[classes[int(i)]] for i in np.argmax(proba, axis=1)]
        over = proba >= self.thresholds_[np.newaxis, :]
        return [[classes[j] for j in np.flatnonzero(row)] for row in over]

    def explainer(self) -> Engine:
        """The engine whose `explanation` method explains this one's scores: itself, unless it delegates."""
        return self

    def feature_weights(self) -> tuple[TfidfFeaturizer, NDArray[np.float32]]:
        """The featurizer and (n_features, n_classes) weights of an engine whose `explanation` is "linear"."""
        raise NotImplementedError(f"{type(self).__name__} has no per-feature weights")

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        return self.decide(self.predict_proba(texts))

    def predictions(
        self, texts: Sequence[str], *, top_k: int | None = None, threshold: float = 0.0
    ) -> list[Prediction]:
        """Ranked label scores and the decision for each text."""
        proba = self.predict_proba(texts)
        return predictions_of(self.classes_, proba, self.decide(proba), top_k=top_k, threshold=threshold)


@dataclass(frozen=True, slots=True)
class Targets:
    """Checked training data as arrays: the label set, the task, gold indicators and the usable validation rows."""

    task: TaskType
    classes: list[str]
    y_train: BoolArray
    val_texts: list[str]
    y_val: BoolArray


class HeadEngine(Engine):
    """Base of the engines that score their features with a calibrated head (linear, embedding, zeroshot, auto).

    A subclass sets `name` and `meta_file` (its JSON metadata, whose name existing artifacts fix), and says
    whether it can fit without held-out rows (`needs_validation`). It supplies its features and head through
    `fit`, `_proba`, `save`, `load` and `_hyperparameters`; this class gives every one of them the same checks.
    """

    meta_file: ClassVar[str]
    format_version: ClassVar[int] = 1
    needs_validation: ClassVar[bool] = False

    fit_info_: dict[str, Any]
    _encoder: TextEncoder | None = None

    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder this engine was given; `ConfigError` when it needs one and was given none."""
        if self._encoder is None:
            raise ConfigError(f"the {self.name} engine needs a sentence encoder: pass encoder= when creating it")
        return self._encoder

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        """Check the hyperparameters, then the data (the same checks and messages for every engine, see
        `engines/targets.py`), then let the engine fit its features and head from the checked targets."""
        self._check_hyperparameters()
        task = task_of(multi_label)
        classes = classes_of(train, task)
        val_texts, y_val = validation_rows(validation, classes, task, required=self.needs_validation)
        targets = Targets(task, classes, indicator(train.labels, classes), val_texts, y_val)
        return self._fit(train, validation, targets, progress or silent)

    def _check_hyperparameters(self) -> None:
        """`DataError` naming the hyperparameter that cannot work (run before any data is looked at)."""

    @abstractmethod
    def _fit(self, train: LabeledTexts, validation: LabeledTexts, targets: Targets, step: ProgressCallback) -> Self:
        """Learn from checked data: `targets` holds the label set, the task and the usable validation rows."""

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Calibrated scores, one row per text, one column per entry of `classes_`."""
        self.check_fitted()
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a sequence of texts, not one string")
        return self._proba(texts)

    @abstractmethod
    def _proba(self, texts: Sequence[str]) -> FloatArray:
        """`predict_proba` of a fitted engine, for a sequence of texts."""

    @abstractmethod
    def _hyperparameters(self) -> dict[str, Any]:
        """The `__init__` arguments as JSON (what `load` passes back to `__init__`)."""

    def _fitted_params(self) -> dict[str, Any]:
        """What `get_params` adds once fitted: by default the fit's record, merged in."""
        return dict(self.fit_info_)

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters, plus after fit what the fit chose and measured."""
        params = self._hyperparameters()
        if self.is_fitted():
            params.update(self._fitted_params())
        return params

    def _write_meta(self, directory: Path, meta: dict[str, Any]) -> None:
        """Write `meta_file`: the engine's name and format, then the engine's own fields."""
        full = {"engine": self.name, "format": self.format_version, **meta}
        (directory / self.meta_file).write_text(json.dumps(full), encoding="utf-8")

    @classmethod
    def _read_meta(cls, directory: Path) -> dict[str, Any]:
        """Read `meta_file`; `ValueError` when it belongs to another engine or format (use inside `_loading`)."""
        meta: dict[str, Any] = json.loads((directory / cls.meta_file).read_text(encoding="utf-8"))
        if meta.get("engine") != cls.name or meta.get("format") != cls.format_version:
            raise ValueError(f"not a {cls.name} model of format {cls.format_version}")
        return meta

    @classmethod
    @contextmanager
    def _loading(cls, directory: Path) -> Iterator[None]:
        """Turn what a missing, malformed or inconsistent file raises into one `ModelLoadError`."""
        try:
            yield
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot load {cls.name} model from {directory.name}: {exc}") from exc


class EncoderEngine(HeadEngine):
    """A `HeadEngine` whose features come from the sentence encoder it is given.

    The encoder's model id and fingerprint are recorded at fit (`encoder_`) and checked at load, so a model
    never scores vectors of another encoder than the one it was trained on.
    """

    needs_encoder = True
    encoder_: dict[str, Any]
    _head: Head

    def _save_with_head(self, directory: Path) -> None:
        """Write the metadata file and the head's arrays, in the layout of the embedding and combined engines."""
        self.check_fitted()
        meta = {
            "task": self.task_.value,
            "classes": self.classes_,
            "encoder": self.encoder_,
            "hyperparameters": self._hyperparameters(),
            "head": save_head(self._head, directory),
            "fit_info": self.fit_info_,
        }
        self._write_meta(directory, meta)

    @classmethod
    def _load_with_head(
        cls, directory: Path, encoder: TextEncoder | None, n_features: Callable[[TextEncoder], int]
    ) -> Self:
        """Read what `_save_with_head` wrote; `n_features(encoder)`: the width the head's weights must have."""
        with cls._loading(directory):
            meta = cls._read_meta(directory)
            engine = cls(**{**meta["hyperparameters"], "encoder": encoder})
            classes = [str(c) for c in meta["classes"]]
            head = load_head(meta["head"], directory, n_features(engine.encoder), len(classes))
            recorded = dict(meta["encoder"])
        engine._check_encoder(recorded, directory.name)
        engine._head = head
        engine.classes_, engine.task_, engine.thresholds_ = classes, TaskType(meta["task"]), head.thresholds
        engine.fit_info_ = dict(meta.get("fit_info") or {})
        return engine

    def _record_encoder(self) -> None:
        self.encoder_ = {"model_id": self.encoder.model_id, "sha256": self.encoder.sha256}

    def _check_encoder(self, recorded: dict[str, Any], model_name: str) -> None:
        """`ModelLoadError` when the model was trained on vectors from another encoder than this one."""
        encoder = self.encoder
        sha = recorded.get("sha256")
        earlier = sha != encoder.sha256 and sha in getattr(encoder, "earlier_sha256", frozenset())
        if recorded.get("model_id") != encoder.model_id or (sha != encoder.sha256 and not earlier):
            raise ModelLoadError(
                f"cannot load {model_name}: trained with encoder {recorded.get('model_id')} "
                f"({str(sha)[:12]}), this server runs {encoder.model_id} ({encoder.sha256[:12]})"
            )
        if earlier:
            logger.warning(
                "%s was trained on an earlier build of encoder %s (%s); serving it with this one (%s), whose "
                "vectors differ by rounding: retrain it to record this build",
                model_name,
                encoder.model_id,
                str(sha)[:12],
                encoder.sha256[:12],
            )
        self.encoder_ = recorded


def silent(step: str, fraction: float) -> None:
    """The progress callback used when the caller gives none."""


def rank_scores(
    classes: Sequence[str], row: FloatArray, *, top_k: int | None = None, threshold: float = 0.0
) -> list[LabelScore]:
    """Labels sorted by score (ties keep label order), dropping those under `threshold`, at most `top_k`."""
    return rank_rows(classes, np.asarray(row)[np.newaxis, :], top_k=top_k, threshold=threshold)[0]


def rank_rows(
    classes: Sequence[str], proba: FloatArray, *, top_k: int | None = None, threshold: float = 0.0
) -> list[list[LabelScore]]:
    """`rank_scores` of every row of `proba`, ranked in a few array operations for the whole batch."""
    n_rows, n_classes = proba.shape
    k = n_classes if top_k is None else min(top_k, n_classes)
    if n_rows == 0 or k == 0:
        return [[] for _ in range(n_rows)]
    order = _top_columns(proba, k)
    scores = proba[np.arange(n_rows)[:, np.newaxis], order].tolist()
    names = np.asarray(classes, dtype=object)[order].tolist()
    if threshold <= 0.0:  # probabilities are never negative: nothing to drop
        return [
            list(map(LabelScore, row_names, row_scores)) for row_names, row_scores in zip(names, scores, strict=True)
        ]
    return [
        [LabelScore(name, score) for name, score in zip(row_names, row_scores, strict=True) if score >= threshold]
        for row_names, row_scores in zip(names, scores, strict=True)
    ]


def _top_columns(proba: FloatArray, k: int) -> NDArray[np.intp]:
    """Per row, the columns of the `k` best scores, best first, equal scores in column order (a stable sort).

    For a few labels, `k` rounds of argmax (which returns the first of equal maxima, so ties keep column order)
    cost less than sorting every row: 3 of 77 labels for 64 rows in about a fifth of the time.
    """
    if k > 8:
        return np.argsort(-proba, axis=1, kind="stable")[:, :k]
    rows = np.arange(proba.shape[0])
    left = proba.astype(np.float64, copy=True)
    order = np.empty((proba.shape[0], k), dtype=np.intp)
    for i in range(k):
        best = left.argmax(axis=1)
        order[:, i] = best
        left[rows, best] = -np.inf
    return order


def predictions_of(
    classes: Sequence[str],
    proba: FloatArray,
    decided: Sequence[list[str]],
    *,
    top_k: int | None = None,
    threshold: float = 0.0,
) -> list[Prediction]:
    """A `Prediction` per row: its ranked label scores and the engine's decision for it."""
    ranked = rank_rows(classes, proba, top_k=top_k, threshold=threshold)
    return [Prediction(labels, list(d)) for labels, d in zip(ranked, decided, strict=True)]
