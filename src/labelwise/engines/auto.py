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
from labelwise.engines.base import (
    EncoderEngine,
    Engine,
    FloatArray,
    HeadEngine,
    ProgressCallback,
    Targets,
    TextEncoder,
)
from labelwise.engines.calibration import expected_calibration_error
from labelwise.engines.embedding import EmbeddingEngine
from labelwise.engines.head import HeadConfig, fit_head
from labelwise.engines.linear import LinearEngine
from labelwise.engines.targets import indicator
from labelwise.errors import DataError

logger = logging.getLogger(__name__)

CANDIDATES: tuple[str, ...] = ("linear", "embedding", "combined")
BoolArray = NDArray[np.bool_]


class CombinedEngine(EncoderEngine):
    """TF-IDF word and character n-grams joined with sentence vectors (times `embedding_weight`), one
    calibrated logistic regression over both. Used as a candidate of `auto`; not registered on its own."""

    name = "combined"
    meta_file = "combined.json"

    def __init__(
        self,
        *,
        c_grid: Sequence[float] = (4.0, 16.0),
        embedding_weight: float = 1.0,
        refit: bool = True,
        seed: int = 13,
        encoder: TextEncoder | None = None,
    ) -> None:
        self._encoder = encoder
        self.c_grid = tuple(float(c) for c in c_grid)
        self.embedding_weight = float(embedding_weight)
        self.refit = refit
        self.seed = seed

    def _fit(self, train: LabeledTexts, validation: LabeledTexts, targets: Targets, step: ProgressCallback) -> Self:
        t = targets
        vectors = self.encoder.encode([*train.texts, *t.val_texts])
        return self.fit_vectors(
            train.texts,
            vectors[: len(train)],
            t.y_train,
            t.val_texts,
            vectors[len(train) :],
            t.y_val,
            t.classes,
            t.task,
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
        self._record_encoder()
        self._featurizer, self._head = featurizer, head
        self.classes_, self.task_, self.thresholds_ = classes, task, head.thresholds
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

    def _proba(self, texts: Sequence[str]) -> FloatArray:
        return self.predict_proba_vectors(texts, self.encoder.encode(texts))

    def predict_proba_vectors(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> FloatArray:
        self.check_fitted()
        return self._head.proba(self._features(self._featurizer, texts, vectors))

    def save(self, directory: Path) -> None:
        """Write `combined.json`, the head's arrays, and the TF-IDF vocabulary and weights."""
        self._save_with_head(directory)
        vocabulary = self._featurizer.vocabulary_json()
        (directory / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=True), encoding="ascii")
        np.save(directory / "idf.npy", self._featurizer.idf, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        from labelwise.engines._tfidf import TfidfFeaturizer

        with cls._loading(directory):
            vocabulary = json.loads((directory / "vocabulary.json").read_text(encoding="ascii"))
            featurizer = TfidfFeaturizer.from_json(vocabulary, np.load(directory / "idf.npy", allow_pickle=False))
        engine = cls._load_with_head(directory, encoder, lambda given: featurizer.n_features + given.dimensions)
        engine._featurizer = featurizer
        return engine

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "c_grid": list(self.c_grid),
            "embedding_weight": self.embedding_weight,
            "refit": self.refit,
            "seed": self.seed,
        }

    def _fitted_params(self) -> dict[str, Any]:
        return {"fit_info": self.fit_info_}


class AutoEngine(HeadEngine):
    """Fits the candidates, keeps the best on validation data (see the module docstring)."""

    name = "auto"
    meta_file = "auto.json"
    needs_validation = True  # candidates are compared on held-out rows
    needs_encoder = True  # for the candidates that embed; a linear winner never touches it

    def __init__(
        self, *, candidates: Sequence[str] = CANDIDATES, seed: int = 13, encoder: TextEncoder | None = None
    ) -> None:
        self._encoder = encoder
        self.candidates = tuple(candidates)
        self.seed = seed

    def _fit(self, train: LabeledTexts, validation: LabeledTexts, targets: Targets, step: ProgressCallback) -> Self:
        """Fit every candidate without refitting, score them on `validation`, refit the winner."""
        task, val_texts, y_val = targets.task, targets.val_texts, targets.y_val
        data = _Data(train, validation, targets, self._encoder)
        if any(c != "linear" for c in self.candidates):
            step("embedding texts", 0.0)
            vectors = self.encoder.encode([*train.texts, *val_texts])
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

    def _check_hyperparameters(self) -> None:
        unknown = [c for c in self.candidates if c not in CANDIDATES]
        if unknown or not self.candidates:
            raise DataError(f"candidates: choose among {', '.join(CANDIDATES)}", param="candidates")

    def _proba(self, texts: Sequence[str]) -> FloatArray:
        return self._chosen.predict_proba(texts)

    def explainer(self) -> Engine:
        """The chosen candidate: a linear winner gets the linear explanation."""
        self.check_fitted()
        return self._chosen.explainer()

    def save(self, directory: Path) -> None:
        """Write `auto.json` (which candidate, and why) and the chosen engine's own files."""
        self.check_fitted()
        self._write_meta(directory, {"chosen": self._chosen.name, "params": self.get_params()})
        self._chosen.save(directory)

    @classmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        with cls._loading(directory):
            meta = cls._read_meta(directory)
            chosen_name = str(meta["chosen"])
            if chosen_name not in CANDIDATES:
                raise ValueError(f"unknown chosen engine {chosen_name!r}")
            params = meta["params"]
            engine = cls(candidates=params["candidates"], seed=params["seed"], encoder=encoder)
        chosen = _candidate_class(chosen_name).load(directory, encoder=encoder)
        engine._chosen = chosen
        engine.classes_, engine.task_, engine.thresholds_ = chosen.classes_, chosen.task_, chosen.thresholds_
        engine.selection_ = dict(params.get("selection") or {})
        return engine

    def _hyperparameters(self) -> dict[str, Any]:
        return {"candidates": list(self.candidates), "seed": self.seed}

    def _fitted_params(self) -> dict[str, Any]:
        return {"selection": self.selection_, "chosen_params": self._chosen.get_params()}


class _Data:
    """What every candidate is fitted from (vectors are filled in when a candidate needs them)."""

    def __init__(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        targets: Targets,
        encoder: TextEncoder | None,
    ) -> None:
        self.train, self.validation, self.val_texts = train, validation, targets.val_texts
        self.y_train, self.y_val = targets.y_train, targets.y_val
        self.classes, self.task = targets.classes, targets.task
        self.multi_label, self.encoder = targets.task is TaskType.MULTI_LABEL, encoder
        self.x_train: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self.x_val: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)


def _fit_candidate(name: str, data: _Data, *, refit: bool, seed: int) -> tuple[Engine, FloatArray]:
    """A fitted candidate and its probabilities on the validation texts."""
    if name == "linear":
        linear = LinearEngine(refit=refit, seed=seed)
        linear.fit(data.train, data.validation, multi_label=data.multi_label)
        return linear, linear.predict_proba(data.val_texts)
    if name == "embedding":
        embedding = EmbeddingEngine(refit=refit, seed=seed, encoder=data.encoder)
        embedding.fit_vectors(data.x_train, data.y_train, data.x_val, data.y_val, data.classes, data.task)
        return embedding, embedding.predict_proba_vectors(data.x_val)
    combined = CombinedEngine(refit=refit, seed=seed, encoder=data.encoder)
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
    candidates: dict[str, type[Engine]] = {"linear": LinearEngine, "embedding": EmbeddingEngine}
    return candidates.get(name, CombinedEngine)
