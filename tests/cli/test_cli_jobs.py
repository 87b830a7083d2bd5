"""`labelwise jobs ...` against a real server on loopback: submit --wait, status, results, cancel, errors."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from tests.api.serving_fakes import Fixture, make_settings, reset_keyword_engine, serving

from labelwise.api import create_app
from labelwise.cli import main

TEXTS = ["my card has not arrived", "top up with bank transfer", "reset the password please"]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    reset_keyword_engine()
    settings = make_settings(tmp_path / "data", database_url, job_chunk_rows=10, worker_poll_seconds=0.02)
    fixture = Fixture(settings)
    fixture.publish("intents")
    key = fixture.key("classify")
    try:
        with serving(create_app(settings)) as base:
            yield base, key
    finally:
        fixture.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), (orjson.loads(out.out) if out.out.strip() else out.err)


def test_submit_wait_status_results(
    server: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, key = server
    source = tmp_path / "in.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows([i, TEXTS[i % 3]] for i in range(45))
    common = ("--server", base, "--key", key, "--json")
    code, job = run(capsys, "jobs", "submit", str(source), "--model", "intents", "--wait", *common)
    assert code == 0
    assert (job["state"], job["rows_done"]) == ("succeeded", 45)
    code, status = run(capsys, "jobs", "status", job["id"], *common)
    assert status["id"] == job["id"]
    output = tmp_path / "out.csv"
    code, written = run(capsys, "jobs", "results", job["id"], "--output", str(output), *common)
    assert code == 0
    assert written["bytes"] == output.stat().st_size
    with output.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["label"] for r in rows[:3]] == ["card", "topup", "password"]
    code, cancelled = run(capsys, "jobs", "cancel", job["id"], *common)
    assert cancelled["state"] == "succeeded"  # an ended job stays as it ended
    code, listed = run(capsys, "jobs", "list", *common)
    assert [j["id"] for j in listed] == [job["id"]]


def test_errors_are_one_line_and_exit_1(server: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    base, key = server
    code, err = run(capsys, "jobs", "status", "job_nope", "--server", base, "--key", key)
    assert code == 1
    assert "404" in err
    assert "job_nope" in err


def test_submit_an_embed_job_and_fetch_its_vectors(
    server: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, key = server
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"n": i, "text": TEXTS[i % 3]}) + b"\n" for i in range(12)))
    common = ("--server", base, "--key", key, "--json")
    code, job = run(capsys, "jobs", "submit", str(source), "--kind", "embed", "--wait", *common)
    assert code == 0, job
    assert (job["kind"], job["state"], job["rows_done"], job["model"]) == ("embed", "succeeded", 12, "all-MiniLM-L6-v2")
    output = tmp_path / "vectors.parquet"
    code, _ = run(capsys, "jobs", "results", job["id"], "--output", str(output), *common)
    assert code == 0
    table = pq.read_table(output)
    assert table.column_names == ["n", "text", "embedding"]
    assert table.column("n").to_pylist() == list(range(12))
    vectors = table.column("embedding").to_pylist()
    assert {len(vector) for vector in vectors} == {384}
    assert vectors[0] == vectors[3]  # the same text, the same vector
    code, err = run(capsys, "jobs", "submit", str(source), "--kind", "embed", "--top-k", "2", *common)
    assert code == 1
    assert "top_k: only classify jobs take top_k" in err
