"""The transformer engine and `models import`: training on a one-layer MiniLM for seconds, serving the int8 ONNX
graph without PyTorch, parity with PyTorch, resuming from a checkpoint, importing a classifier written by
transformers' own `save_pretrained`.

The engine contract itself is checked by the conformance suite (test_engine_conformance.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.support.transformers import fine_tuned_classifier, tiny_base_model
from tests.unit.engines.test_engine_conformance import single_label_data

from labelwise.cli import main
from labelwise.domain import LabeledTexts
from labelwise.engines.hf_import import calibrate_on, import_classifier
from labelwise.engines.transformer import TransformerEngine
from labelwise.errors import DataError


def small(**params: object) -> TransformerEngine:
    defaults: dict[str, object] = {
        "base_model": str(tiny_base_model()),
        "epochs": 2,
        "learning_rate": 5e-4,
        "batch_size": 16,
        "contrastive_pairs": 2,
    }
    return TransformerEngine(**{**defaults, **params})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[TransformerEngine, Path]:
    engine = small().fit(single_label_data(60, 1), single_label_data(45, 2))
    directory = tmp_path_factory.mktemp("transformer")
    engine.save(directory)
    return engine, directory


def test_fine_tunes_with_a_fine_tuned_head_and_records_parity(saved: tuple[TransformerEngine, Path]) -> None:
    engine, _ = saved
    info = engine.get_params()
    assert info["few_shot"] is False
    assert info["mode"] == "fine-tuned head"
    assert info["training"]["epochs_run"] == 2
    assert info["parity"]["rows"] == 45
    assert info["parity"]["agreement"] >= 0.995
    assert 0.0 <= info["parity"]["max_probability_difference"] < 0.05


def test_serving_a_transformer_model_never_imports_torch(saved: tuple[TransformerEngine, Path]) -> None:
    engine, directory = saved
    code = (
        "import sys; from pathlib import Path; import labelwise.api.app; "
        "from labelwise.engines.transformer import TransformerEngine; "
        f"e = TransformerEngine.load(Path({str(directory)!r})); "
        "print(e.predict(['a goal for the team'])[0][0]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    label, modules = out.strip().splitlines()
    assert modules == "[]"
    assert label == engine.predict(["a goal for the team"])[0][0]


def test_a_missing_extra_is_one_clear_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None; "
        "from labelwise.errors import ConfigError; "
        "from labelwise.engines.transformer import TransformerEngine; "
        "from tests.unit.engines.test_engine_conformance import single_label_data\n"
        "try:\n"
        f"    TransformerEngine(base_model={str(tiny_base_model())!r}).fit(single_label_data(30, 1), "
        "single_label_data(15, 2))\n"
        "except ConfigError as exc:\n"
        "    print(exc.message)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    assert "pip install 'labelwise[train-transformer]'" in out.stdout


def test_few_examples_tune_on_pairs_then_fit_the_shared_head() -> None:
    engine = small().fit(single_label_data(24, 3), single_label_data(15, 4))
    params = engine.get_params()
    assert params["few_shot"] is True
    assert params["training"]["contrastive_pairs"] == 2 * 2 * 24
    assert "C" in params  # the logistic-regression head of engines/head.py
    data = single_label_data(30, 5)
    accuracy = np.mean([p == list(gold) for p, gold in zip(engine.predict(data.texts), data.labels, strict=True)])
    assert accuracy >= 0.8


def test_a_time_budget_stops_at_the_best_checkpoint() -> None:
    engine = small(epochs=50, time_budget=1.0).fit(single_label_data(60, 1), single_label_data(45, 2))
    training = engine.get_params()["training"]
    assert training["stopped_by"] == "time budget"
    assert training["epochs_run"] < 50
    assert training["best_epoch"] >= 1


def test_a_run_started_again_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    first = small(epochs=2)
    first.checkpoint_dir = tmp_path
    first.fit(single_label_data(60, 1), single_label_data(30, 2))
    assert (tmp_path / "checkpoint.pt").is_file()
    again = small(epochs=3)  # one more epoch: a different setting, so the checkpoint does not apply
    again.checkpoint_dir = tmp_path
    assert again.fit(single_label_data(60, 1), single_label_data(30, 2)).get_params()["training"]["resumed"] is False
    same = small(epochs=3)
    same.checkpoint_dir = tmp_path
    training = same.fit(single_label_data(60, 1), single_label_data(30, 2)).get_params()["training"]
    assert training["resumed"] is True
    assert training["epochs_run"] == 3
    assert [h["epoch"] for h in training["history"]] == [1, 2, 3]


def test_hyperparameters_are_checked_by_name() -> None:
    with pytest.raises(DataError, match="time_budget: -1 seconds, must be positive"):
        small(time_budget=-1).fit(single_label_data(30, 1), single_label_data(15, 2))
    with pytest.raises(DataError, match=r"base_model: .* has no config\.json"):
        TransformerEngine(base_model="/nonexistent").fit(single_label_data(30, 1), single_label_data(15, 2))


# Import ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_classifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], LabeledTexts]:
    data = single_label_data(60, 11)
    directory = tmp_path_factory.mktemp("hf-classifier")
    names = fine_tuned_classifier(directory, data.texts, [labels[0] for labels in data.labels])
    return directory, names, data


def test_an_imported_classifier_scores_as_pytorch_does(hf_classifier: tuple[Path, list[str], LabeledTexts]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    directory, names, _ = hf_classifier
    engine = import_classifier(directory)
    assert engine.classes_ == names  # id2label order, not sorted
    assert names != sorted(names)
    texts = single_label_data(30, 12).texts
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    batch = AutoTokenizer.from_pretrained(directory)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = torch.softmax(model(**batch).logits, dim=1).numpy()
    served = engine.predict_proba(texts)
    agreement = float(np.mean(np.argmax(served, axis=1) == np.argmax(reference, axis=1)))
    assert agreement >= 0.95
    assert float(np.abs(served - reference).max()) < 0.05
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
    hf_classifier: tuple[Path, list[str], LabeledTexts],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    directory, names, _ = hf_classifier
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
    assert json.loads(out)["predicted"][0] in names


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("tokenizer", "tokenizer.json is missing"),
        ("id2label", "config.json has no id2label"),
        ("architecture", "not a sequence classifier (architectures: GPT2LMHeadModel)"),
        ("model_type", "model_type 'gpt2' is not supported"),
    ],
)
def test_bad_directories_get_one_clear_error_line(
    hf_classifier: tuple[Path, list[str], LabeledTexts],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    message: str,
) -> None:
    import shutil

    source, _, _ = hf_classifier
    directory = tmp_path / "bad"
    shutil.copytree(source, directory)
    config = json.loads((directory / "config.json").read_text())
    if damage == "tokenizer":
        (directory / "tokenizer.json").unlink()
    elif damage == "id2label":
        config["id2label"] = {}
    elif damage == "architecture":
        config["architectures"] = ["GPT2LMHeadModel"]
    else:
        config["model_type"] = "gpt2"
    (directory / "config.json").write_text(json.dumps(config))
    code, _, err = _run(tmp_path, monkeypatch, capsys, "models", "import", str(directory), "--name", "bad")
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1


# A training job's worker killed mid-run ----------------------------------------------------------------------------


def test_a_killed_training_worker_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Real `labelwise worker` processes: the first is killed with SIGKILL once an epoch's checkpoint exists;
    the next one takes the job over when the lease expires and continues from that checkpoint."""
    import csv
    import os
    import signal

    from tests.integration.test_jobs_crash import run_worker, wait_until

    from labelwise.bootstrap import Container
    from labelwise.config import Settings
    from labelwise.data import ReadOptions
    from labelwise.services.training import TrainRequest

    database_url = f"sqlite:///{tmp_path / 'labelwise.db'}"
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    container = Container(settings, open_migrates=True)
    data = single_label_data(90, 21)
    upload = tmp_path / "train.csv"
    with upload.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows((text, gold[0]) for text, gold in zip(data.texts, data.labels, strict=True))
    params = {"base_model": str(tiny_base_model()), "epochs": 3, "learning_rate": 5e-4, "batch_size": 16}
    request = TrainRequest(name="resumed", train=upload, engine="transformer", options=ReadOptions(), params=params)
    job = container.jobs.submit_train("lwtest01", upload, request)
    checkpoint = container.jobs.job_dir(job.id) / "checkpoint" / "checkpoint.pt"
    env = {
        **os.environ,
        "LABELWISE_DATA_DIR": str(settings.data_dir),
        "LABELWISE_DATABASE_URL": database_url,
        "LABELWISE_JOB_LEASE_SECONDS": "1.0",
    }

    def state() -> str:
        row = container.jobs.repo.get(job.id)
        return "missing" if row is None else row.state

    first = run_worker(env)
    try:
        wait_until(checkpoint.is_file, 240, "a first checkpoint")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(60)
    second = run_worker(env)
    try:
        wait_until(lambda: state() not in ("queued", "running"), 300, "the job to end")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    finished = container.jobs.repo.get(job.id)
    assert finished is not None
    assert finished.state == "succeeded", finished
    record = container.store.resolve("resumed")
    assert record.params["training"]["resumed"] is True
    container.db.dispose()


def test_transformer_options_are_refused_for_other_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.jsonl"
    rows = single_label_data(30, 1)
    pairs = zip(rows.texts, rows.labels, strict=True)
    data.write_text("".join(json.dumps({"text": text, "label": gold[0]}) + "\n" for text, gold in pairs))
    code, _, err = _run(tmp_path, monkeypatch, capsys, "train", str(data), "--name", "x", "--time-budget", "60")
    assert code == 2
    assert "--time-budget applies to --engine transformer only" in err
