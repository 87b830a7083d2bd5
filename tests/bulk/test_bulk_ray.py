"""Bulk inference on a local Ray instance equals local `labelwise predict`, row for row; without Ray, `--ray` fails
with one line that names the extra; the README's example runs. One Ray start for the module keeps it cheap (two
CPUs: one actor and the read and write tasks; no dashboard)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from labelwise.config import Settings
from labelwise.services.training import ModelService, TrainRequest
from labelwise.storage.db import Database
from tests.cli.conftest import Run

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make install installs it)")

pytestmark = [
    pytest.mark.slow,
    # Ray's own modules warn about their dependencies; the tests' "warnings are errors" is for our code.
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning"),
]

TOPICS = {
    "sports": ["the striker scored", "the team won the match", "a late goal in the final", "the coach praised"],
    "business": ["shares fell on the warning", "the bank raised rates", "profits rose this quarter", "markets fell"],
    "tech": ["the new phone has a chip", "software update for laptops", "the app crashed", "a faster processor"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A data directory (SQLite) with the linear model `tickets` 1.0.0, and Ray started once for the module."""
    root = tmp_path_factory.mktemp("bulk")
    settings = Settings(data_dir=root / "data")
    settings.data_dir.mkdir()
    train = root / "train.csv"
    with train.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "label"])
        for label, texts in TOPICS.items():
            writer.writerows([f"{texts[i % 4]} {label} story {i}", label] for i in range(12))
    db = Database(settings.resolved_database_url())
    db.migrate()
    from labelwise.registry.store import ModelStore
    from labelwise.storage.repositories import ModelRepository

    ModelService(ModelStore(settings.models_dir, ModelRepository(db))).train(TrainRequest(name="tickets", train=train))
    db.dispose()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield settings
    finally:
        ray.shutdown()


def _texts_file(path: Path) -> list[dict[str, Any]]:
    rows = [
        {"id": f"{i:04d}", "text": text, "note": "" if i % 3 else 'x,y "quoted"'}
        for i, text in enumerate(
            f"{t} {n}" for n in range(30) for t in ("goal scored late", "bank shares", "phone chip", "mixed bag")
        )
    ]
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, ["id", "text", "note"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """A file's rows, or a directory's files' rows in name order."""
    files = sorted(p for p in path.iterdir() if not p.name.startswith(".")) if path.is_dir() else [path]
    rows: list[dict[str, Any]] = []
    for file in files:
        if file.suffix == ".parquet":
            rows += pq.read_table(file).to_pylist()
        elif file.suffix == ".csv":
            with file.open(newline="") as handle:
                rows += list(csv.DictReader(handle))
        else:
            rows += [json.loads(line) for line in file.read_text().splitlines() if line]
    return rows


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_ray_output_equals_local_predict(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    from labelwise.bulk import predict_dataset
    from labelwise.cli import main

    source = tmp_path / "texts.csv"
    inputs = _texts_file(source)
    local, remote = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(trained.data_dir))
    with pytest.raises(SystemExit) as done:
        main(["predict", "tickets", "--input", str(source), "--output", str(local), "--json"])
    assert done.value.code == 0

    result = predict_dataset("tickets", str(source), str(remote), settings=trained, batch_rows=25, progress=False)

    assert (result.model, result.model_version, result.rows) == ("tickets", "1.0.0", len(inputs))
    assert remote.is_dir()
    expected, got = _read_rows(local), _read_rows(remote)
    assert len(got) == len(inputs)
    assert got == expected
    assert list(got[0]) == ["id", "text", "note", "label", "score"]
    assert {row["label"] for row in got} == set(TOPICS)


def test_cli_predict_with_ray(trained: Settings, tmp_path: Path, run_in: Any) -> None:
    source = tmp_path / "texts.csv"
    inputs = _texts_file(source)
    output = tmp_path / "out.parquet"
    code, out, err = run_in(
        trained, "predict", "tickets", "--input", str(source), "--output", str(output), "--ray", "--batch-size", "50"
    )
    assert code == 0, err
    assert json.loads(out) == {"model": "tickets", "model_version": "1.0.0", "rows": len(inputs), "output": str(output)}
    assert len(_read_rows(output)) == len(inputs)


@pytest.fixture
def run_in(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    def invoke(settings: Settings, *args: str) -> tuple[int, str, str]:
        from labelwise.cli import main

        monkeypatch.setenv("LABELWISE_DATA_DIR", str(settings.data_dir))
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([*args, "--json"])
        captured = capsys.readouterr()
        return int(done.value.code or 0), captured.out, captured.err

    return invoke  # type: ignore[return-value]


def test_without_ray_the_error_names_the_extra(
    trained: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_in: Any
) -> None:
    source = tmp_path / "texts.csv"
    _texts_file(source)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError, as when it is absent
    code, _, err = run_in(
        trained, "predict", "tickets", "--input", str(source), "--output", str(tmp_path / "o.csv"), "--ray"
    )
    assert code == 1
    assert err.strip().splitlines() == ["error: bulk inference on Ray needs Ray Data: pip install 'labelwise[ray]'"]


def test_the_readme_example(trained: Settings, tmp_path: Path) -> None:
    from tests.readme.test_readme import readme_blocks

    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    inputs = _texts_file(tmp_path / "big.csv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    # `--ray` with no address joins the cluster in RAY_ADDRESS: the module's, instead of a second start.
    env.update(LABELWISE_DATA_DIR=str(trained.data_dir), RAY_ADDRESS=ray.get_runtime_context().gcs_address)
    script = readme_blocks()["ray"]
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_read_rows(tmp_path / "predicted.parquet")) == len(inputs)
