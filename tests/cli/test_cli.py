"""The `labelwise` command end to end, in-process through `main()`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tests.cli.conftest import Run

TOPICS = {
    "sports": ["match", "goal", "team", "player", "coach", "league", "score", "season"],
    "finance": ["bank", "loan", "interest", "stock", "market", "price", "budget", "tax"],
    "weather": ["rain", "storm", "sunny", "cloud", "wind", "snow", "forecast", "cold"],
}
FILLER = ["the", "a", "today", "we", "saw", "really", "very", "news", "about", "this"]


def write_corpus(path: Path, rows_per_label: int = 40, seed: int = 1) -> None:
    rng = random.Random(seed)
    lines = []
    for label, words in TOPICS.items():
        for i in range(rows_per_label):
            text = " ".join(rng.sample(words, 3) + rng.sample(FILLER, 3) + [f"w{i}"])
            lines.append(json.dumps({"text": text, "label": label}))
    rng.shuffle(lines)
    path.write_text("\n".join(lines) + "\n")


def as_json(out: str) -> Any:
    return json.loads(out)


def test_train_eval_predict_and_models(run: Run, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    write_corpus(data)
    code, out, err = run("train", str(data), "--name", "topics", "--json")
    assert code == 0, err
    trained = as_json(out)
    assert trained["version"] == "1.0.0"
    assert trained["labels"] == 3
    assert trained["metrics"]["accuracy"] >= 0.9
    assert Path(trained["report"]).is_file()

    code, out, _ = run("eval", "topics", str(data), "--json")
    assert code == 0
    metrics = as_json(out)
    assert metrics["n"] == 120
    assert metrics["accuracy"] >= 0.9
    assert set(metrics["per_label"]) == set(TOPICS)

    code, out, _ = run("predict", "topics", "the storm brought rain and wind", "--json")
    assert code == 0
    assert as_json(out)["predicted"] == ["weather"]

    code, out, _ = run("train", str(data), "--name", "topics", "--json")
    assert as_json(out)["version"] == "1.1.0"
    code, out, _ = run("models", "alias", "topics", "production", "1.0.0", "--json")
    assert code == 0
    code, out, _ = run("models", "show", "topics", "--json")
    versions = {v["version"]: v["aliases"] for v in as_json(out)["versions"]}
    assert "production" in versions["1.0.0"]
    assert "latest" in versions["1.1.0"]
    code, out, _ = run("models", "list", "--json")
    assert [m["name"] for m in as_json(out)] == ["topics"]
    code, out, _ = run("models", "delete", "topics:1.1.0", "--yes", "--json")
    assert as_json(out) == {"deleted": ["topics:1.1.0"]}
    code, out, _ = run("models", "show", "topics")
    assert code == 0
    assert "1.1.0" not in out


def test_predict_file_streams_to_parquet(run: Run, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    write_corpus(data)
    assert run("train", str(data), "--name", "topics", "--json")[0] == 0
    source = tmp_path / "texts.csv"
    source.write_text("id,text\n" + "".join(f"{i},goal for the team number {i}\n" for i in range(12_000)))
    target = tmp_path / "out.parquet"
    code, out, err = run("predict", "topics", "--input", str(source), "--output", str(target), "--json")
    assert code == 0, err
    assert as_json(out)["rows"] == 12_000
    table = pq.read_table(target)
    assert table.column_names == ["id", "text", "label", "score"]
    assert table.num_rows == 12_000
    assert set(table.column("label").to_pylist()) == {"sports"}


def test_multi_label_training(run: Run, tmp_path: Path) -> None:
    rng = random.Random(3)
    path = tmp_path / "tags.csv"
    lines = ["text,tags"]
    for i in range(150):
        chosen = sorted(rng.sample(list(TOPICS), rng.choice([1, 2])))
        words = [w for label in chosen for w in rng.sample(TOPICS[label], 3)]
        lines.append(f"{' '.join(words)} item{i},{'|'.join(chosen)}")
    path.write_text("\n".join(lines) + "\n")
    code, out, err = run("train", str(path), "--name", "tags", "--label-col", "tags", "--label-sep", "|", "--json")
    assert code == 0, err
    assert as_json(out)["task"] == "multi_label"
    code, out, _ = run("predict", "tags", "rain storm goal team", "--json")
    assert set(as_json(out)["predicted"]) == {"sports", "weather"}


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("text,label\nhello,a\n", ["--name", "m"], "label 'a' has 1 example"),
        ("body,label\nhello,a\nhi,a\n", ["--name", "m"], "no column 'text'"),
        ("text,label\nhello,a\nhello,b\nx,a\ny,b\n", ["--name", "m", "--on-conflict", "error"], "different labels"),
        ("text,label\nhello,a\n,a\n", ["--name", "m"], "row 3: text is empty"),
        ("text,label\nhello,a\n", ["--name", "Not Valid"], "not a valid model name"),
        ("text,label\nhello,a\n", ["--name", "m", "--engine", "nope"], "unknown engine 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    run: Run, tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content)
    code, _, err = run("train", str(path), *args)
    assert code == 1
    assert message in err
    assert "Traceback" not in err


def test_undecodable_bytes_are_reported(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"text,label\nhello,a\nbad \xff byte,a\n")
    code, _, err = run("train", str(path), "--name", "m")
    assert code == 1
    assert "row 3" in err
    assert "not valid UTF-8" in err


def test_missing_file_and_unknown_model(run: Run, tmp_path: Path) -> None:
    code, _, err = run("train", str(tmp_path / "none.csv"), "--name", "m")
    assert code == 1
    assert "none.csv" in err
    code, _, err = run("predict", "ghost", "hello")
    assert code == 1
    assert "model 'ghost' not found" in err


def test_usage_errors_exit_2(run: Run) -> None:
    code, _, err = run("predict", "m")
    assert code == 2
    assert "either a TEXT or --input" in err


def test_keys_create_list_revoke(run: Run) -> None:
    code, out, _ = run("keys", "create", "--name", "svc", "--scope", "classify", "--scope", "train", "--json")
    assert code == 0
    created = as_json(out)
    assert created["key"].startswith(f"lw_{created['prefix']}_")
    assert created["scopes"] == ["classify", "train"]
    code, out, _ = run("keys", "list", "--json")
    listed = as_json(out)
    assert [k["prefix"] for k in listed] == [created["prefix"]]
    assert created["key"] not in out
    assert run("keys", "revoke", created["prefix"])[0] == 0
    code, out, _ = run("keys", "list", "--json")
    assert as_json(out)[0]["active"] is False
    code, _, err = run("keys", "create", "--scope", "root")
    assert code == 1
    assert "scopes: root" in err


def test_installed_entry_point_runs() -> None:
    """The console script itself (not just `main`) starts and prints help."""
    exe = Path(sys.executable).parent / "labelwise"
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    for command in ("train", "eval", "predict", "models", "keys", "serve"):
        assert command in result.stdout
