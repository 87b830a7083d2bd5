"""`labelwise classify` as a client of a real server on loopback (and of a MockTransport for chunking)."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.serving_fakes import TRAIN, Fixture, make_settings, serving

from labelwise.api import create_app
from labelwise.cli import client_cmd, main
from labelwise.client import Client
from labelwise.engines.linear import LinearEngine

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, key) of a real app serving a trained linear model `intents`."""
    root = tmp_path_factory.mktemp("cli-classify")
    settings = make_settings(root / "data", f"sqlite:///{root / 'labelwise.db'}")
    fx = Fixture(settings)
    fx.publish("intents", LinearEngine().fit(TRAIN, TRAIN))
    try:
        with serving(create_app(settings)) as base:
            yield base, fx.key("classify")
    finally:
        fx.close()


@pytest.fixture
def run(
    tmp_path: Path, server: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    base, key = server
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LABELWISE_URL", base)
    monkeypatch.setenv("LABELWISE_API_KEY", key)
    monkeypatch.setenv("COLUMNS", "200")

    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(["classify", *args])
        out = capsys.readouterr()
        code = exit_info.value.code
        return (0 if code is None else code if isinstance(code, int) else 1), out.out, out.err

    return invoke


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_one_text_prints_a_table(run: Run) -> None:
    code, out, err = run("my card is late", "--top-k", "2")
    assert code == 0, err
    assert "intents 1.0.0" in out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert set(rows) == {"card", "topup"}
    assert "✓" in rows["card"]
    assert "✓" not in rows["topup"]


def test_one_text_as_json(run: Run, server: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABELWISE_URL")
    monkeypatch.delenv("LABELWISE_API_KEY")
    base, key = server
    code, out, err = run("reset my password", "--json", "--server", base, "--key", key, "--model", "intents")
    assert code == 0, err
    [body] = json_lines(out)
    assert body["predicted"] == ["password"]
    assert body["labels"][0]["label"] == "password"
    assert (body["model"], body["model_version"]) == ("intents", "1.0.0")
    assert body["request_id"].startswith("req_")


def test_a_file_of_texts_as_table_and_json_lines(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("my card is late\n\ntop up by bank transfer\nreset my password\n", encoding="utf-8")
    code, out, err = run("--input", str(path))
    assert code == 0, err
    assert "intents 1.0.0" in out
    assert "top up by bank transfer" in out
    code, out, err = run("--input", str(path), "--json")
    assert code == 0, err
    rows = json_lines(out)
    assert [(r["line"], r["predicted"]) for r in rows] == [(1, ["card"]), (3, ["topup"]), (4, ["password"])]
    assert rows[1]["text"] == "top up by bank transfer"


def test_texts_from_stdin(run: Run) -> None:
    code, out, err = run("--input", "-", "--json", stdin="where is my new card\nI forgot my password\n")
    assert code == 0, err
    assert [r["predicted"] for r in json_lines(out)] == [["card"], ["password"]]


def test_texts_are_sent_in_batches_of_512_with_the_options(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        results = [
            {"index": i, "labels": [{"label": "a", "score": 0.7}], "predicted": ["a"]}
            for i in range(len(body["texts"]))
        ]
        return httpx.Response(
            200, json={"results": results, "model": "zs", "model_version": "1", "request_id": "req_z"}
        )

    monkeypatch.setattr(client_cmd, "Client", partial(Client, transport=httpx.MockTransport(handler)))
    texts = "".join(f"text {i}\n" for i in range(1030))
    code, out, err = run("--input", "-", "--json", "--labels", "a, b,,c", "--top-k", "1", stdin=texts)
    assert code == 0, err
    assert [len(b["texts"]) for b in bodies] == [512, 512, 6]
    assert all(b["labels"] == ["a", "b", "c"] and b["top_k"] == 1 for b in bodies)
    rows = json_lines(out)
    assert len(rows) == 1030
    assert (rows[600]["line"], rows[600]["text"]) == (601, "text 600")


def test_server_errors_are_one_line_with_code_and_request_id(run: Run) -> None:
    code, out, err = run("my card", "--model", "nope")
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "model_not_found" in err
    assert "request id req_" in err
    code, _, err = run("my card", "--key", "lw_00000000_wrongkey")
    assert code == 1
    assert "unauthorized" in err
    assert "lw_00000000_wrongkey" not in err


def test_an_unreachable_server_is_one_line(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(client_cmd, "Client", partial(Client, sleep=lambda _seconds: None))
    code, _, err = run("my card", "--server", f"http://127.0.0.1:{port}")
    assert code == 1
    assert "connection_error" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("text", "--input", "-"),
        ("text", "--top-k", "0"),
        ("text", "--labels", " , "),
    ],
)
def test_usage_errors_exit_2(run: Run, args: tuple[str, ...]) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert err


def test_usage_errors_without_a_key_or_texts(run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    code, _, err = run("--input", str(empty))
    assert code == 2
    assert "no texts" in err
    code, _, err = run("--input", str(tmp_path / "missing.txt"))
    assert code == 1
    assert "missing.txt" in err
    monkeypatch.delenv("LABELWISE_API_KEY")
    code, _, err = run("my card")
    assert code == 2
    assert "LABELWISE_API_KEY" in err
