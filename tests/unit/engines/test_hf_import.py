"""`labelwise models import`: Hugging Face sequence classifiers of each supported family, fine-tuned for a few
steps and written by transformers' own `save_pretrained` (tests/support/transformers.py), served as int8 ONNX
with PyTorch's scores; bad directories get one clear error line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.support.transformers import FAMILIES, fine_tuned_classifier
from tests.unit.engines.test_engine_conformance import single_label_data

from labelwise.cli import main
from labelwise.engines.hf_import import calibrate_on, import_classifier
from labelwise.engines.transformer import TransformerEngine


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[str]]]:
    """One fine-tuned classifier directory per family, with its labels in id order."""
    data = single_label_data(60, 11)
    out = {}
    for family in FAMILIES:
        directory = tmp_path_factory.mktemp(f"hf-{family}")
        names = fine_tuned_classifier(directory, data.texts, [g[0] for g in data.labels], family=family)
        out[family] = directory, names
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_an_imported_classifier_scores_as_pytorch_does(
    classifiers: dict[str, tuple[Path, list[str]]], family: str
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    directory, names = classifiers[family]
    engine = import_classifier(directory)
    assert engine.classes_ == names  # id2label order, not sorted
    assert names != sorted(names)
    data = single_label_data(30, 12)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    batch = AutoTokenizer.from_pretrained(directory)(data.texts, padding=True, return_tensors="pt")
    batch.pop("token_type_ids", None)
    with torch.no_grad():
        reference = torch.softmax(model(**batch).logits, dim=1).numpy()
    gold = [names.index(labels[0]) for labels in data.labels]
    assert np.mean(np.argmax(reference, axis=1) == gold) >= 0.8  # the classifier learned something to agree on
    served = engine.predict_proba(data.texts)
    assert np.array_equal(np.argmax(served, axis=1), np.argmax(reference, axis=1))
    assert float(np.abs(served - reference).max()) < 0.05


def test_an_imported_distilbert_keeps_its_relu_through_save_and_load(
    classifiers: dict[str, tuple[Path, list[str]]], tmp_path: Path
) -> None:
    engine = import_classifier(classifiers["distilbert"][0])
    engine.save(tmp_path)
    texts = single_label_data(10, 13).texts
    np.testing.assert_allclose(TransformerEngine.load(tmp_path).predict_proba(texts), engine.predict_proba(texts))


def test_validation_rows_calibrate_an_imported_classifier(classifiers: dict[str, tuple[Path, list[str]]]) -> None:
    engine = import_classifier(classifiers["bert"][0])
    calibrate_on(engine, single_label_data(45, 13))
    assert engine.get_params()["validation_rows"] == 45


def _run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LABELWISE_DATABASE_URL", f"sqlite:///{tmp_path / 'labelwise.db'}")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out.out, out.err


def test_models_import_stores_a_version_with_a_report(
    classifiers: dict[str, tuple[Path, list[str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, names = classifiers["roberta"]
    validation = tmp_path / "dev.jsonl"
    data = single_label_data(45, 14)
    rows = zip(data.texts, data.labels, strict=True)
    validation.write_text("".join(json.dumps({"text": text, "label": gold[0]}) + "\n" for text, gold in rows))
    code, out, err = _run(
        tmp_path, monkeypatch, capsys, "models", "import", str(directory), "--name", "hf", "--validation",
        str(validation), "--json",
    )  # fmt: skip
    assert code == 0, err
    imported = json.loads(out)
    assert imported["engine"] == "transformer"
    assert imported["labels"] == names
    assert imported["metrics"]["n"] == 45
    code, out, err = _run(tmp_path, monkeypatch, capsys, "predict", "hf", "a goal for the team", "--json")
    assert code == 0, err
    assert json.loads(out)["predicted"] == ["sport"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("tokenizer", "tokenizer.json is missing"),
        ("weights", "model.safetensors is missing (save it with safe_serialization=True)"),
        ("id2label", "config.json has no id2label"),
        ("architecture", "not a sequence classifier (architectures: GPT2LMHeadModel)"),
        ("model_type", "model_type 'gpt2' is not supported: it is not one of the encoder layouts"),
        ("activation", "activation 'relu' is not supported: the int8 runtime computes exact gelu"),
    ],
)
def test_bad_directories_get_one_clear_error_line(
    classifiers: dict[str, tuple[Path, list[str]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    message: str,
) -> None:
    directory = tmp_path / "bad"
    shutil.copytree(classifiers["bert"][0], directory)
    config = json.loads((directory / "config.json").read_text())
    if damage in ("tokenizer", "weights"):
        (directory / ("tokenizer.json" if damage == "tokenizer" else "model.safetensors")).unlink()
    elif damage == "id2label":
        config["id2label"] = {}
    elif damage == "architecture":
        config["architectures"] = ["GPT2LMHeadModel"]
    elif damage == "activation":
        config["hidden_act"] = "relu"
    else:
        config["model_type"] = "gpt2"
    (directory / "config.json").write_text(json.dumps(config))
    code, _, err = _run(tmp_path, monkeypatch, capsys, "models", "import", str(directory), "--name", "bad")
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_an_mpnet_classifier_is_refused_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = single_label_data(30, 15)
    directory = tmp_path / "mpnet"
    fine_tuned_classifier(directory, data.texts, [g[0] for g in data.labels], family="mpnet", steps=0)
    code, _, err = _run(tmp_path, monkeypatch, capsys, "models", "import", str(directory), "--name", "mpnet")
    assert code == 1
    assert "model_type 'mpnet' is not supported: its attention adds relative-position buckets" in err
    assert "(supported: bert, distilbert, roberta, xlm-roberta)" in err
    assert len(err.strip().splitlines()) == 1
