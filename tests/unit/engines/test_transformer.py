"""The transformer engine: fine-tuning tiny real encoders for a few steps (tests/support/transformers.py), serving
the int8 ONNX graph without PyTorch, parity with PyTorch, the time budget, resuming from a checkpoint, the encoder
families it takes, and one short fine-tune of the default all-MiniLM-L6-v2 base.

The engine contract itself is checked by the conformance suite (test_engine_conformance.py); importing Hugging Face
classifiers by test_hf_import.py; training jobs on real workers by tests/integration/test_transformer_jobs.py.
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

from labelwise.engines.transformer import TransformerEngine
from labelwise.errors import DataError


def small(**params: object) -> TransformerEngine:
    """Settings for the tiny encoders: a few steps of a high learning rate, one thread."""
    defaults: dict[str, object] = {
        "base_model": str(tiny_base_model()),
        "epochs": 2,
        "learning_rate": 3e-3,
        "batch_size": 16,
        "contrastive_pairs": 2,
        "few_shot": 0,  # supervised fine-tuning however few the rows; the few-shot test sets it
        "threads": 1,
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
    assert info["training"]["sentences_per_second"] > 0
    assert info["parity"]["rows"] == 45
    assert info["parity"]["agreement"] >= 0.995
    assert 0.0 <= info["parity"]["max_probability_difference"] < 0.05
    data = single_label_data(30, 5)
    accuracy = np.mean([p == list(gold) for p, gold in zip(engine.predict(data.texts), data.labels, strict=True)])
    assert accuracy >= 0.8


def test_a_saved_model_serves_the_same_scores_without_torch(saved: tuple[TransformerEngine, Path]) -> None:
    engine, directory = saved
    texts = ["a goal for the team", "garlic pasta in the oven tonight"]
    code = (
        "import sys, json; from pathlib import Path; import labelwise.api.app; "
        "from labelwise.engines.transformer import TransformerEngine; "
        f"e = TransformerEngine.load(Path({str(directory)!r})); "
        f"print(json.dumps(e.predict_proba({texts!r}).tolist())); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    scores, modules = out.strip().splitlines()
    assert modules == "[]"
    np.testing.assert_allclose(np.array(json.loads(scores)), engine.predict_proba(texts), atol=1e-6)


def test_a_missing_extra_is_one_clear_error() -> None:
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
    engine = small(few_shot=16, learning_rate=1e-2, contrastive_pairs=4)
    params = engine.fit(single_label_data(24, 3), single_label_data(15, 4)).get_params()
    assert params["few_shot"] is True
    assert params["training"]["contrastive_pairs"] == 2 * 4 * 24
    assert "C" in params  # the logistic-regression head of engines/head.py
    data = single_label_data(30, 5)
    accuracy = np.mean([p == list(gold) for p, gold in zip(engine.predict(data.texts), data.labels, strict=True)])
    assert accuracy >= 0.8


def test_a_time_budget_stops_at_the_best_checkpoint() -> None:
    # More epochs than any machine runs within the budget, and no early stopping: only the budget can stop it.
    engine = small(epochs=100_000, patience=100_000, time_budget=0.5)
    training = engine.fit(single_label_data(30, 1), single_label_data(15, 2)).get_params()["training"]
    assert training["stopped_by"] == "time budget"
    assert training["epochs_run"] < 100_000
    assert 1 <= training["best_epoch"] <= training["epochs_run"]


def test_a_run_started_again_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    first = small(epochs=2)
    first.checkpoint_dir = tmp_path
    first.fit(single_label_data(40, 1), single_label_data(15, 2))
    assert (tmp_path / "checkpoint.pt").is_file()
    again = small(epochs=3)  # one more epoch: a different setting, so the checkpoint does not apply
    again.checkpoint_dir = tmp_path
    assert again.fit(single_label_data(40, 1), single_label_data(15, 2)).get_params()["training"]["resumed"] is False
    same = small(epochs=3)
    same.checkpoint_dir = tmp_path
    training = same.fit(single_label_data(40, 1), single_label_data(15, 2)).get_params()["training"]
    assert training["resumed"] is True
    assert training["epochs_run"] == 3
    assert [h["epoch"] for h in training["history"]] == [1, 2, 3]


def test_hyperparameters_are_checked_by_name() -> None:
    with pytest.raises(DataError, match="time_budget: -1 seconds, must be positive"):
        small(time_budget=-1).fit(single_label_data(30, 1), single_label_data(15, 2))
    with pytest.raises(DataError, match="threads: 0, must be at least 1"):
        small(threads=0).fit(single_label_data(30, 1), single_label_data(15, 2))
    with pytest.raises(DataError, match=r"base_model: .* has no config\.json"):
        TransformerEngine(base_model="/nonexistent").fit(single_label_data(30, 1), single_label_data(15, 2))


@pytest.mark.parametrize("family", ["distilbert", "roberta"])
def test_other_encoder_families_fine_tune_and_serve_in_int8(family: str) -> None:
    engine = small(base_model=str(tiny_base_model(family))).fit(single_label_data(45, 6), single_label_data(30, 7))
    parity = engine.get_params()["parity"]
    assert parity["agreement"] >= 0.995
    assert parity["max_probability_difference"] < 0.05


def test_a_base_model_of_another_family_is_refused_by_name(tmp_path: Path) -> None:
    data = single_label_data(30, 8)
    fine_tuned_classifier(tmp_path, data.texts, [gold[0] for gold in data.labels], family="mpnet", steps=0)
    with pytest.raises(DataError, match=r"base_model: .*model_type 'mpnet' is not supported: its attention adds"):
        small(base_model=str(tmp_path)).fit(data, single_label_data(15, 9))


def test_the_default_minilm_base_fine_tunes_and_its_int8_graph_agrees() -> None:
    """The one test on all-MiniLM-L6-v2 itself (six layers, 22M parameters): a few steps, then parity."""
    engine = TransformerEngine(epochs=1, batch_size=16, learning_rate=2e-4, few_shot=0, threads=1)
    engine.fit(single_label_data(32, 10), single_label_data(30, 11))
    params = engine.get_params()
    assert params["base_model"] == "all-MiniLM-L6-v2"
    assert params["training"]["epochs_run"] == 1
    assert params["parity"]["agreement"] >= 0.995
    assert params["parity"]["max_probability_difference"] < 0.05


def test_transformer_options_are_refused_for_other_engines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labelwise.cli import main

    data = tmp_path / "train.jsonl"
    rows = single_label_data(30, 1)
    pairs = zip(rows.texts, rows.labels, strict=True)
    data.write_text("".join(json.dumps({"text": text, "label": gold[0]}) + "\n" for text, gold in pairs))
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LABELWISE_DATABASE_URL", f"sqlite:///{tmp_path / 'labelwise.db'}")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(data), "--name", "x", "--time-budget", "60"])
    assert exit_info.value.code == 2
    assert "--time-budget applies to --engine transformer only" in capsys.readouterr().err
