"""The `embedding` engine: the frozen sentence encoder plus a calibrated logistic-regression head.

Texts become L2-normalized all-MiniLM-L6-v2 vectors (the encoder the engine is given); a logistic regression
(multinomial for single-label, one binary model per label for multi-label) maps them to scores; the calibration
method is chosen by cross-fitted ECE exactly as the linear engine does; multi-label models get per-label
thresholds. Works from a handful of examples per label: with a small or empty validation split, C and the
calibration come from cross-validation over the pooled rows (`engines/head.py` says how).

Artifacts are `embedding.json` plus `coef.npy` and `intercept.npy`; the JSON records the encoder's model id
and fingerprint, and loading refuses a model trained on other vectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, TaskType
from labelwise.encoder.windows import LONG_TEXT_CHOICES, LongText
from labelwise.engines.base import EncoderEngine, FloatArray, ProgressCallback, Targets, TextEncoder, silent
from labelwise.engines.calibration import METHODS
from labelwise.engines.head import HeadConfig, check_calibration_methods, fit_head
from labelwise.errors import DataError

logger = logging.getLogger(__name__)

BoolArray = NDArray[np.bool_]


class EmbeddingEngine(EncoderEngine):
    """Sentence embeddings and a calibrated logistic-regression head (see the module docstring)."""

    name = "embedding"
    meta_file = "embedding.json"

    def __init__(
        self,
        *,
        c_grid: Sequence[float] = (1.0, 4.0, 16.0, 64.0),
        default_c: float = 16.0,
        calibration: Sequence[str] = METHODS,
        long_text: LongText = "mean",
        min_validation_rows: int = 50,
        min_threshold_positives: int = 5,
        refit: bool = True,
        seed: int = 13,
        encoder: TextEncoder | None = None,
    ) -> None:
        self._encoder = encoder  # a dependency, not a hyperparameter: not in get_params
        self.c_grid = tuple(float(c) for c in c_grid)
        self.default_c = float(default_c)
        self.calibration = tuple(calibration)
        self.long_text = long_text
        self.min_validation_rows = min_validation_rows
        self.min_threshold_positives = min_threshold_positives
        self.refit = refit
        self.seed = seed

    def _check_hyperparameters(self) -> None:
        if not self.c_grid or min(self.c_grid) <= 0 or self.default_c <= 0:
            raise DataError("c_grid: give at least one positive C", param="c_grid")
        check_calibration_methods(self.calibration)
        if self.long_text not in LONG_TEXT_CHOICES:
            raise DataError(f"long_text: choose one of {', '.join(LONG_TEXT_CHOICES)}", param="long_text")

    def _head_config(self) -> HeadConfig:
        self._check_hyperparameters()  # fit_vectors (the auto engine) comes here without fit
        return HeadConfig(
            self.c_grid,
            self.default_c,
            self.calibration,
            self.min_validation_rows,
            self.min_threshold_positives,
            self.seed,
            self.refit,
        )

    def _fit(self, train: LabeledTexts, validation: LabeledTexts, targets: Targets, step: ProgressCallback) -> Self:
        """Embed `train` and `validation`, then fit the head (C, calibration, thresholds as described above)."""
        step("embedding texts", 0.0)
        vectors = self._encode([*train.texts, *targets.val_texts])
        return self.fit_vectors(
            vectors[: len(train)],
            targets.y_train,
            vectors[len(train) :],
            targets.y_val,
            targets.classes,
            targets.task,
            step,
        )

    def fit_vectors(
        self,
        x_train: NDArray[np.float32],
        y_train: BoolArray,
        x_val: NDArray[np.float32],
        y_val: BoolArray,
        classes: list[str],
        task: TaskType,
        progress: ProgressCallback | None = None,
    ) -> Self:
        """Fit from vectors already computed by the shared encoder (the `auto` engine embeds only once)."""
        step = progress or silent
        started = time.perf_counter()
        step("fitting the head", 0.6)
        head = fit_head(x_train, y_train, x_val, y_val, task, self._head_config())
        self._record_encoder()
        self._head = head
        self.classes_ = classes
        self.task_ = task
        self.thresholds_ = head.thresholds
        self.fit_info_ = {
            **head.info,
            "train_rows": len(y_train),
            "validation_rows": len(y_val),
            "fit_seconds": round(time.perf_counter() - started, 3),
        }
        step("done", 1.0)
        logger.info("embedding engine fitted", extra={"C": head.info["C"], "mode": head.info["mode"]})
        return self

    def _encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.encoder.encode(texts, long_text=self.long_text)

    def _proba(self, texts: Sequence[str]) -> FloatArray:
        """Calibrated probabilities; every text is encoded independently of the others in its batch."""
        return self._head.proba(self._encode(texts))

    def predict_proba_vectors(self, vectors: NDArray[np.float32]) -> FloatArray:
        self.check_fitted()
        return self._head.proba(vectors)

    def save(self, directory: Path) -> None:
        """Write `embedding.json`, `coef.npy` and `intercept.npy`."""
        self._save_with_head(directory)

    @classmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        """Read a model written by `save`; `ModelLoadError` if files are bad or the encoder differs."""
        return cls._load_with_head(directory, encoder, lambda given: given.dimensions)

    def _fitted_params(self) -> dict[str, Any]:
        return {**self.fit_info_, "encoder": self.encoder_}

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "c_grid": list(self.c_grid),
            "default_c": self.default_c,
            "calibration": list(self.calibration),
            "long_text": self.long_text,
            "min_validation_rows": self.min_validation_rows,
            "min_threshold_positives": self.min_threshold_positives,
            "refit": self.refit,
            "seed": self.seed,
        }
