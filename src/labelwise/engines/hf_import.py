"""Turning a Hugging Face sequence-classification directory into a `transformer` engine, without PyTorch.

The directory is what transformers' `save_pretrained` writes for an encoder classifier of a family the int8
runtime builds (`encoder/layouts.py`: BERT and MiniLM, DistilBERT, RoBERTa, XLM-RoBERTa): `config.json` with
`id2label`, `model.safetensors`, `tokenizer.json`. The encoder's weights become the project's int8 graph
(`encoder/quantize.py`); what the classifier puts on top of the first token's vector is kept as arrays: a dense
layer and its activation (BERT's pooler and RoBERTa's `classifier.dense` with tanh, DistilBERT's
`pre_classifier` with ReLU), then the output layer. Labels keep `id2label` order, so a client reading `probs` by
index (the vLLM `/classify` shape) sees the order it trained with.

Without validation data the probabilities are the model's own (softmax, or sigmoid for a
`multi_label_classification` model, thresholds 0.5); `calibrate_on` fits the calibrator and thresholds on
labeled rows as for every other engine.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.domain import LabeledTexts, TaskType
from labelwise.encoder.layouts import UnsupportedLayout, layout_of
from labelwise.engines.calibration import TemperatureCalibrator
from labelwise.engines.head import Head, calibrate, calibration_summary
from labelwise.engines.targets import indicator
from labelwise.engines.transformer import MODEL_FILE, TOKENIZER_FILE, PoolerActivation, TransformerEngine
from labelwise.errors import DataError

_WEIGHTS = "model.safetensors"

# What each family puts on the first token's vector: (dense layer, its activation, output layer).
_HEADS: dict[str, tuple[str, PoolerActivation, str]] = {
    "bert": ("bert.pooler.dense", "tanh", "classifier"),
    "distilbert": ("pre_classifier", "relu", "classifier"),
    "roberta": ("classifier.dense", "tanh", "classifier.out_proj"),
    "xlm-roberta": ("classifier.dense", "tanh", "classifier.out_proj"),
}


def _refuse(directory: Path, why: str) -> DataError:
    return DataError(f"{directory}: {why}", param="directory")


def read_classifier_config(directory: Path) -> dict[str, Any]:
    """`config.json` of an encoder classifier; `DataError` naming what is missing or unsupported."""
    if not directory.is_dir():
        raise _refuse(directory, "not a directory")
    for name in ("config.json", _WEIGHTS, TOKENIZER_FILE):
        if not (directory / name).is_file():
            hint = " (save it with safe_serialization=True)" if name == _WEIGHTS else ""
            raise _refuse(directory, f"{name} is missing{hint}")
    try:
        config: dict[str, Any] = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _refuse(directory, f"config.json is not JSON ({exc})") from None
    architectures = config.get("architectures") or []
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures):
        raise _refuse(directory, f"not a sequence classifier (architectures: {', '.join(architectures) or 'none'})")
    try:
        layout_of(config)
    except UnsupportedLayout as exc:
        raise _refuse(directory, str(exc)) from None
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise _refuse(directory, "config.json has no id2label")
    return config


def import_classifier(directory: Path, *, window_tokens: int = 256) -> TransformerEngine:
    """A fitted `TransformerEngine` serving the classifier in `directory` (see the module docstring)."""
    from safetensors.numpy import load_file

    from labelwise.encoder.quantize import int8_from_weights

    config = read_classifier_config(directory)
    labels = [str(config["id2label"][key]) for key in sorted(config["id2label"], key=int)]
    if len(set(labels)) != len(labels):
        raise _refuse(directory, "id2label names a label twice")
    weights = load_file(str(directory / _WEIGHTS))
    family = str(config["model_type"])
    pooler_name, activation, output_name = _HEADS[family]
    try:
        pooler_weight = weights.pop(f"{pooler_name}.weight")
        pooler_bias = weights.pop(f"{pooler_name}.bias")
        classifier_weight = weights.pop(f"{output_name}.weight")
        classifier_bias = weights.pop(f"{output_name}.bias")
    except KeyError as exc:
        raise _refuse(directory, f"{_WEIGHTS} has no {exc.args[0]}: not a {family} sequence classifier") from None
    if classifier_weight.shape[0] != len(labels):
        raise _refuse(directory, f"the classifier has {classifier_weight.shape[0]} outputs, id2label {len(labels)}")
    multi = config.get("problem_type") == "multi_label_classification"
    task = TaskType.MULTI_LABEL if multi else TaskType.SINGLE_LABEL
    engine = TransformerEngine(window_tokens=window_tokens, long_text="truncate")
    engine._workdir = tempfile.TemporaryDirectory(prefix="labelwise-import-")
    work = Path(engine._workdir.name)
    try:
        int8_from_weights(weights, work / MODEL_FILE, config)
    except (ValueError, KeyError) as exc:
        raise _refuse(directory, f"cannot convert the encoder: {exc}") from None
    shutil.copyfile(directory / TOKENIZER_FILE, work / TOKENIZER_FILE)
    engine._runtime = engine._open_runtime(work, "cls")
    engine._pooler = (np.ascontiguousarray(pooler_weight.T, np.float32), pooler_bias.astype(np.float32))
    engine._pooler_activation = activation
    thresholds = np.full(len(labels), 0.5) if multi else None
    info = {"mode": "imported", "calibration": {"method": "temperature", "reason": "the model's own probabilities"}}
    engine._head = Head(
        np.ascontiguousarray(classifier_weight.T, np.float32),
        classifier_bias.astype(np.float64),
        TemperatureCalibrator(task, 1.0),
        thresholds,
        info,
    )
    engine.classes_, engine.task_, engine.thresholds_ = labels, task, thresholds
    engine.fit_info_ = {**info, "imported_from": directory.name, "architecture": config["architectures"][0]}
    return engine


def calibrate_on(engine: TransformerEngine, validation: LabeledTexts) -> None:
    """Fit the calibrator (and multi-label thresholds) of an imported engine on labeled rows."""
    known = set(engine.classes_)
    rows = [i for i, labels in enumerate(validation.labels) if labels and set(labels) <= known]
    if not rows:
        raise DataError("validation: no rows whose labels are all among the model's labels", param="validation")
    texts = [validation.texts[i] for i in rows]
    targets = indicator([validation.labels[i] for i in rows], engine.classes_)
    head = engine._head
    scores = engine.features(texts).astype(np.float64) @ head.coef.astype(np.float64) + head.intercept
    selection, thresholds = calibrate(scores, targets, engine.task_, methods=engine.calibration)
    info = {**head.info, "calibration": calibration_summary(selection, engine.task_), "validation_rows": len(rows)}
    engine._head = Head(head.coef, head.intercept, selection.calibrator, thresholds, info)
    engine.thresholds_ = thresholds
    engine.fit_info_ = {**engine.fit_info_, **info}
