"""The `auto` engine: train several candidates, keep the best on validation data, delegate to it.

Candidates: `linear` (TF-IDF + linear SVM), `embedding` (sentence encoder + logistic head) and `combined`
(TF-IDF features joined with the encoder's vectors under one logistic regression, defined here). Texts are
embedded once and shared by the two candidates that need vectors.

To compare candidates fairly, each is first fitted with `refit=False`, so the validation rows stay unseen by
its final weights, and scored on them (accuracy for single-label, micro-F1 at its own thresholds for
multi-label; ties go to the cheaper candidate, in the order of `candidates`). The winner is then fitted again
with refitting on train + validation, as it would be alone. `get_params()` records every candidate's
validation scores and the reason for the choice; `save`/`load` delegate to the winner and `auto.json` says
which it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, TaskType
from labelwise.engines.base import Engine, FloatArray, ProgressCallback
from labelwise.engines.embedding import (
    EmbeddingEngine,
    HeadConfig,
    check_encoder,
    classes_of,
    fit_head,
    indicator,
    load_head,
    save_head,
    silent,
    validation_rows,
)
from labelwise.errors import DataError, ModelLoadError
from labelwise.training.metrics import expected_calibration_error

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
CANDIDATES: tuple[str, ...] = ("linear", "embedding", "combined")
BoolArray = NDArray[np.bool_]


class CombinedEngine(Engine):
    """TF-IDF word and character n-grams joined with sentence vectors (times `embedding_weight`), one
    calibrated logistic regression over both. Used as a candidate of `auto`; not registered on its own."""

    name = "combined"

    def __init__(
        self,
        *,
        c_grid: Sequence[float] = (4.0, 16.0),
        embedding_weight: float = 1.0,
        refit: bool = True,
        seed: int = 13,
    ) -> None:
        self.c_grid = tuple(float(c) for c in c_grid)
        self.embedding_weight = float(embedding_weight)
        self.refit = refit
        self.seed = seed

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        task = TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL
        classes = classes_of(train, task)
        val_texts, y_val = validation_rows(validation, classes, task)
        vectors = _encoder().encode([*train.texts, *val_texts])
        return self.fit_vectors(
            train.texts,
            vectors[: len(train)],
            indicator(train.labels, classes),
            val_texts,
            vectors[len(train) :],
            y_val,
            classes,
            task,
        )

    def fit_vectors(
        self,
        train_texts: Sequence[str],
        x_train: NDArray[np.float32],
        y_train: BoolArray,
        val_texts: Sequence[str],
        x_val: NDArray[np.float32],
        y_val: BoolArray,
        classes: list[str],
        task: TaskType,
    ) -> Self:
        """Fit from texts and their vectors computed by the shared encoder."""
        from labelwise.engines._tfidf import TfidfConfig, TfidfFeaturizer

        started = time.perf_counter()
        featurizer = TfidfFeaturizer.fit(list(train_texts), TfidfConfig())
        config = HeadConfig(
            c_grid=self.c_grid, default_c=self.c_grid[len(self.c_grid) // 2], refit=self.refit, seed=self.seed
        )
        head = fit_head(
            self._features(featurizer, train_texts, x_train),
            y_train,
            self._features(featurizer, val_texts, x_val),
            y_val,
            task,
            config,
        )
        encoder = _encoder()
        self._featurizer, self._head = featurizer, head
        self.classes_, self.task_, self.thresholds_ = classes, task, head.thresholds
        self.encoder_ = {"model_id": encoder.model_id, "sha256": encoder.sha256}
        self.fit_info_ = {
            **head.info,
            "n_features": featurizer.n_features,
            "fit_seconds": round(time.perf_counter() - started, 3),
        }
        return self

    def _features(self, featurizer: Any, texts: Sequence[str], vectors: NDArray[np.float32]) -> Any:
        from scipy import sparse

        dense = sparse.csr_matrix(vectors.astype(np.float64) * self.embedding_weight)
        return sparse.hstack([featurizer.transform(texts), dense], format="csr")

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        self.check_fitted()
        return self.predict_proba_vectors(texts, _encoder().encode(texts))

    def predict_proba_vectors(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> FloatArray:
        self.check_fitted()
        return self._head.proba(self._features(self._featurizer, texts, vectors))

    def save(self, directory: Path) -> None:
        self.check_fitted()
        meta = {
            "engine": self.name,
            "format": FORMAT_VERSION,
            "task": self.task_.value,
            "classes": self.classes_,
            "encoder": self.encoder_,
            "hyperparameters": self._hyperparameters(),
            "head": save_head(self._head, directory),
            "fit_info": self.fit_info_,
        }
        (directory / "combined.json").write_text(json.dumps(meta), encoding="utf-8")
        vocabulary = self._featurizer.vocabulary_json()
        (directory / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=True), encoding="ascii")
        np.save(directory / "idf.npy", self._featurizer.idf, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> Self:
        from labelwise.encoder import DIMENSIONS
        from labelwise.engines._tfidf import TfidfFeaturizer

        try:
            meta = json.loads((directory / "combined.json").read_text(encoding="utf-8"))
            if meta.get("engine") != cls.name or meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"not a combined model of format {FORMAT_VERSION}")
            engine = cls(**meta["hyperparameters"])
            vocabulary = json.loads((directory / "vocabulary.json").read_text(encoding="ascii"))
            featurizer = TfidfFeaturizer.from_json(vocabulary, np.load(directory / "idf.npy", allow_pickle=False))
            classes = [str(c) for c in meta["classes"]]
            head = load_head(meta["head"], directory, featurizer.n_features + DIMENSIONS, len(classes))
            recorded = dict(meta["encoder"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot load combined model from {directory.name}: {exc}") from exc
        check_encoder(recorded, directory.name)
        engine._featurizer, engine._head = featurizer, head
        engine.classes_, engine.task_, engine.thresholds_ = classes, TaskType(meta["task"]), head.thresholds
        engine.encoder_ = recorded
        engine.fit_info_ = dict(meta.get("fit_info") or {})
        return engine

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "c_grid": list(self.c_grid),
            "embedding_weight": self.embedding_weight,
            "refit": self.refit,
            "seed": self.seed,
        }

    def get_params(self) -> dict[str, Any]:
        params = self._hyperparameters()
        if self.is_fitted():
            params["fit_info"] = self.fit_info_
        return params


class AutoEngine(Engine):
    """Fits the candidates, keeps the best on validation data (see the module docstring)."""

    name = "auto"

    def __init__(self, *, candidates: Sequence[str] = CANDIDATES, seed: int = 13) -> None:
        self.candidates = tuple(candidates)
        self.seed = seed

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        """Fit every candidate without refitting, score them on `validation`, refit the winner."""
        step = progress or silent
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise DataError(f"candidates: choose among {', '.join(CANDIDATES)}", param="candidates")
        task = TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL
        classes = classes_of(train, task)
        val_texts, y_val = validation_rows(validation, classes, task)
        if not val_texts:
            raise DataError("validation: no rows with a label seen in train", param="validation")
        y_train = indicator(train.labels, classes)
        data = _Data(train, validation, val_texts, y_train, y_val, classes, task, multi_label)
        if any(c != "linear" for c in self.candidates):
            step("embedding texts", 0.0)
            vectors = _encoder().encode([*train.texts, *val_texts])
            data.x_train, data.x_val = vectors[: len(train)], vectors[len(train) :]
        report: dict[str, dict[str, Any]] = {}
        for i, name in enumerate(self.candidates):
            step(f"fitting candidate {name}", 0.1 + 0.7 * i / len(self.candidates))
            started = time.perf_counter()
            engine, proba = _fit_candidate(name, data, refit=False, seed=self.seed)
            report[name] = _score(engine, proba, y_val, task) | {"fit_seconds": round(time.perf_counter() - started, 2)}
            logger.info("auto candidate scored", extra={"candidate": name, **report[name]})
        chosen = max(self.candidates, key=lambda n: (report[n]["validation_score"], -self.candidates.index(n)))
        step(f"refitting {chosen} on train and validation", 0.85)
        winner, _ = _fit_candidate(chosen, data, refit=True, seed=self.seed)
        self._chosen = winner
        self.classes_, self.task_, self.thresholds_ = winner.classes_, winner.task_, winner.thresholds_
        metric = "accuracy" if task is TaskType.SINGLE_LABEL else "micro-F1"
        self.selection_ = {
            "chosen": chosen,
            "reason": f"highest validation {metric} ({report[chosen]['validation_score']:.4f}, {len(val_texts)} rows)",
            "candidates": report,
        }
        step("done", 1.0)
        return self

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        self.check_fitted()
        return self._chosen.predict_proba(texts)

    def save(self, directory: Path) -> None:
        """Write `auto.json` (which candidate, and why) and the chosen engine's own files."""
        self.check_fitted()
        meta = {"engine": self.name, "format": FORMAT_VERSION, "chosen": self._chosen.name, "params": self.get_params()}
        (directory / "auto.json").write_text(json.dumps(meta), encoding="utf-8")
        self._chosen.save(directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        try:
            meta = json.loads((directory / "auto.json").read_text(encoding="utf-8"))
            if meta.get("engine") != cls.name or meta.get("format") != FORMAT_VERSION:
                raise ValueError(f"not an auto model of format {FORMAT_VERSION}")
            chosen_name = str(meta["chosen"])
            if chosen_name not in CANDIDATES:
                raise ValueError(f"unknown chosen engine {chosen_name!r}")
            params = meta["params"]
            engine = cls(candidates=params["candidates"], seed=params["seed"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot load auto model from {directory.name}: {exc}") from exc
        chosen = _candidate_class(chosen_name).load(directory)
        engine._chosen = chosen
        engine.classes_, engine.task_, engine.thresholds_ = chosen.classes_, chosen.task_, chosen.thresholds_
        engine.selection_ = dict(params.get("selection") or {})
        return engine

    def get_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"candidates": list(self.candidates), "seed": self.seed}
        if self.is_fitted():
            params["selection"] = self.selection_
            params["chosen_params"] = self._chosen.get_params()
        return params


class _Data:
    """What every candidate is fitted from (vectors are filled in when a candidate needs them)."""

    def __init__(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        val_texts: list[str],
        y_train: BoolArray,
        y_val: BoolArray,
        classes: list[str],
        task: TaskType,
        multi_label: bool,
    ) -> None:
        self.train, self.validation, self.val_texts = train, validation, val_texts
        self.y_train, self.y_val, self.classes, self.task, self.multi_label = y_train, y_val, classes, task, multi_label
        self.x_train: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self.x_val: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)


def _fit_candidate(name: str, data: _Data, *, refit: bool, seed: int) -> tuple[Engine, FloatArray]:
    """A fitted candidate and its probabilities on the validation texts."""
    if name == "linear":
        from labelwise.engines.factory import create_engine

        linear = create_engine("linear", refit=refit, seed=seed)
        linear.fit(data.train, data.validation, multi_label=data.multi_label)
        return linear, linear.predict_proba(data.val_texts)
    if name == "embedding":
        embedding = EmbeddingEngine(refit=refit, seed=seed)
        embedding.fit_vectors(data.x_train, data.y_train, data.x_val, data.y_val, data.classes, data.task)
        return embedding, embedding.predict_proba_vectors(data.x_val)
    combined = CombinedEngine(refit=refit, seed=seed)
    combined.fit_vectors(
        data.train.texts, data.x_train, data.y_train, data.val_texts, data.x_val, data.y_val, data.classes, data.task
    )
    return combined, combined.predict_proba_vectors(data.val_texts, data.x_val)


def _score(engine: Engine, proba: FloatArray, targets: BoolArray, task: TaskType) -> dict[str, float]:
    if task is TaskType.SINGLE_LABEL:
        top = np.argmax(proba, axis=1)
        correct = targets[np.arange(len(top)), top]
        ece = expected_calibration_error(proba.max(axis=1), correct)
        return {"validation_score": float(correct.mean()), "validation_ece": round(ece, 5)}
    decided = indicator([tuple(labels) for labels in engine.decide(proba)], engine.classes_)
    tp = float((decided & targets).sum())
    f1 = 2 * tp / max(float(decided.sum() + targets.sum()), 1.0)
    ece = expected_calibration_error(proba.ravel(), targets.ravel())
    return {"validation_score": f1, "validation_ece": round(ece, 5)}


def _candidate_class(name: str) -> type[Engine]:
    if name == "linear":
        from labelwise.engines.factory import engine_class

        return engine_class("linear")
    return EmbeddingEngine if name == "embedding" else CombinedEngine


def _encoder() -> Any:
    from labelwise.encoder import get_encoder

    return get_encoder()
