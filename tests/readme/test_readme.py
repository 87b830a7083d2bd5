"""Every example in README.md runs: the API examples (curl, Python, JavaScript) against a live `labelwise serve`
on loopback with a `news` model, and the CLI examples on small generated files.

Blocks are found by the `<!-- readme-test: NAME -->` marker on the line before their opening fence, so an
example cannot silently drop out of the test: the test fails if a marked block is missing.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from labelwise.services.demo import write_news_corpus
from tests.conftest import REPO

README = REPO / "README.md"
BIN = Path(sys.executable).parent
MARKER = re.compile(r"<!-- readme-test: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


def readme_blocks() -> dict[str, str]:
    return {m["name"]: m["body"] for m in MARKER.finditer(README.read_text())}


def json_documents(text: str) -> list[Any]:
    """Every JSON document in `text`, which holds them back to back (curl prints no newline after a body)."""
    decoder = json.JSONDecoder()
    found, position = [], 0
    while position < len(text.rstrip()):
        document, position = decoder.raw_decode(text, position)
        found.append(document)
        while position < len(text) and text[position].isspace():
            position += 1
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    key: str
    home: Path
    env: dict[str, str]


def small_news(directory: Path, per_label: int = 120) -> Path:
    """A quick-to-train slice of the demo corpus, so the test does not pay for the full `make serve` training."""
    full = directory / "news-full.jsonl"
    write_news_corpus(full)
    rows = [json.loads(line) for line in full.read_text().splitlines()]
    by_label: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    chosen = [r for label in sorted(by_label) for r in by_label[label][:per_label]]
    random.Random(5).shuffle(chosen)
    path = directory / "news.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return path


def run(command: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = {
        **os.environ,
        "LABELWISE_DATA_DIR": str(home / "labelwise-data"),
        "LABELWISE_PORT": str(port),
        "LABELWISE_WORKERS": "1",
        "COLUMNS": "160",
    }
    env.pop("LABELWISE_DATABASE_URL", None)
    run([str(BIN / "labelwise"), "train", str(small_news(home)), "--name", "news", "--json"], env, home)
    key = run([str(BIN / "labelwise"), "demo", "--json"], env, home)
    api_key = json.loads(key.stdout)["key"]
    assert (home / "labelwise-data" / "demo.key").read_text().strip() == api_key
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen([str(BIN / "labelwise"), "serve"], env=env, cwd=home, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not become ready:\n{(home / 'serve.log').read_text()[-3000:]}")
        time.sleep(0.05)
    try:
        yield LiveServer(url, api_key, home, {**env, "LABELWISE_API_KEY": api_key, "LABELWISE_URL": url})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_every_marked_block_exists() -> None:
    # `ray` runs in tests/bulk/test_bulk_ray.py, on the Ray instance that module starts.
    expected = {"api", "client-cli", "python", "javascript", "cli", "keys", "ray", "llm", "llm-python", "jobs-embed"}
    assert set(readme_blocks()) >= expected


def test_language_model_examples(tmp_path: Path, llm_upstream: str) -> None:
    """The curl and `openai`-client examples of "Language models", against a server with a llama.cpp upstream."""
    from tests.integration.test_llm_live import labelwise_serve
    from tests.llm_upstream import MODEL_ALIAS

    assert '"smollm2"' in readme_blocks()["llm-python"]
    assert MODEL_ALIAS == "smollm2"
    with labelwise_serve(tmp_path, LABELWISE_LLM_URL=llm_upstream, LABELWISE_LLM_MODEL=MODEL_ALIAS) as live:
        env = {**os.environ, "LABELWISE_API_KEY": live.key("generate", "classify", credits=None)}
        script = readme_blocks()["llm"].replace("http://127.0.0.1:8000", live.base)
        out = run(["bash", "-euo", "pipefail", "-c", script], env, tmp_path).stdout
        generated, _, rest = out.partition("data: ")
        assert json_documents(generated.strip())[0]["usage"]["completion_tokens"] >= 1
        stream, _, classified = rest.partition("data: [DONE]")
        assert stream.strip()
        answer = json_documents(classified.strip())[0]
        assert (answer["model"], answer["predicted"]) == ("llm", ["positive"])
        code = readme_blocks()["llm-python"].replace("http://127.0.0.1:8000", live.base)
        printed = run([sys.executable, "-c", code], env, tmp_path).stdout
        assert printed.strip()


def test_curl_examples(server: LiveServer) -> None:
    script = readme_blocks()["api"].replace("http://127.0.0.1:8000", server.url)
    result = run(["bash", "-euo", "pipefail", "-c", script], server.env, server.home)
    answers = json_documents(result.stdout)
    assert len(answers) == 2
    first, batch = answers
    assert first["model"] == "news"
    assert first["predicted"] == ["sports"]
    assert len(first["labels"]) == 2
    assert [r["index"] for r in batch["results"]] == [0, 1]
    assert batch["results"][0]["predicted"] == ["business"]


def test_client_cli_example(server: LiveServer) -> None:
    venv = server.home / ".venv"
    if not venv.exists():
        venv.symlink_to(BIN.parent)
    script = readme_blocks()["client-cli"].replace("http://127.0.0.1:8000", server.url)
    result = run(["bash", "-euo", "pipefail", "-c", script], server.env, server.home)
    assert "business" in result.stdout
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["predicted"] for line in lines] == [["sports"], ["tech"]]


def test_embedding_job_example(server: LiveServer) -> None:
    script = readme_blocks()["jobs-embed"].replace("http://127.0.0.1:8000", server.url)
    [job] = json_documents(run(["bash", "-euo", "pipefail", "-c", script], server.env, server.home).stdout)
    assert (job["kind"], job["rows_total"], job["state"]) == ("embed", 2, "queued")
    headers = {"x-api-key": server.key}

    def state() -> str:
        answer: str = httpx.get(f"{server.url}/v1/jobs/{job['id']}", headers=headers, timeout=30).json()["state"]
        return answer

    deadline = time.monotonic() + 120
    while state() in ("queued", "running"):
        assert time.monotonic() < deadline, "the embedding job did not end in 120 s"
        time.sleep(0.1)
    assert state() == "succeeded"
    results = httpx.get(f"{server.url}/v1/jobs/{job['id']}/results", headers=headers, timeout=30)
    assert results.status_code == 200, results.text
    table = pq.read_table(io.BytesIO(results.content))
    assert table.column_names == ["id", "text", "embedding"]
    assert [len(vector) for vector in table.column("embedding").to_pylist()] == [384, 384]


def test_python_example(server: LiveServer) -> None:
    result = run([sys.executable, "-c", readme_blocks()["python"]], server.env, server.home)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("['politics']")
    assert lines[1:] == ["0 ['business']", "1 ['entertainment']"]


def test_javascript_example(server: LiveServer) -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("LABELWISE_REQUIRE_SERVICES"):
            pytest.fail("node is not installed")
        pytest.skip("node is not installed")
    script = server.home / "example.mjs"
    script.write_text(readme_blocks()["javascript"])
    result = run([node, str(script)], server.env, server.home)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[ 'politics' ]")
    assert lines[1:] == ["0 [ 'business' ]", "1 [ 'sports' ]"]


def write_cli_inputs(directory: Path) -> None:
    """The files the README's CLI examples name, generated: tickets, intents, tags and a file to predict."""
    rng = random.Random(11)
    topics = {
        "billing": "charge refund invoice payment card fee",
        "shipping": "parcel delivery courier tracking late address",
        "account": "password login email profile locked settings",
    }

    def rows(n: int) -> list[tuple[str, str]]:
        out = []
        for i in range(n):
            label = rng.choice(sorted(topics))
            words = rng.sample(topics[label].split(), 3)
            out.append((f"{' '.join(words)} please help {i} {rng.randint(0, 10**6)}", label))
        return out

    def csv(path: Path, data: list[tuple[str, str]], header: str = "text,label") -> None:
        path.write_text(header + "\n" + "".join(f"{t},{label}\n" for t, label in data))

    def jsonl(path: Path, data: list[tuple[str, str]]) -> None:
        path.write_text("".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in data))

    csv(directory / "tickets.csv", rows(150))
    csv(directory / "test.csv", rows(30))
    jsonl(directory / "train.jsonl", rows(120))
    jsonl(directory / "dev.jsonl", rows(30))
    jsonl(directory / "test.jsonl", rows(30))
    tags = [(t, label if i % 3 else f"{label}|urgent") for i, (t, label) in enumerate(rows(150))]
    csv(directory / "tags.csv", tags, header="text,tags")
    (directory / "big.csv").write_text("text\n" + "".join(f"my card fee was charged twice {i}\n" for i in range(3000)))


def test_cli_examples(tmp_path: Path) -> None:
    write_cli_inputs(tmp_path)
    (tmp_path / ".venv").symlink_to(BIN.parent)
    env = {**os.environ, "LABELWISE_DATA_DIR": str(tmp_path / "labelwise-data"), "COLUMNS": "160"}
    env.pop("LABELWISE_DATABASE_URL", None)
    result = run(["bash", "-euo", "pipefail", "-c", readme_blocks()["cli"]], env, tmp_path)
    assert "tickets" in result.stdout
    assert (tmp_path / "out.parquet").is_file()
    listing = run([str(BIN / "labelwise"), "models", "list", "--json"], env, tmp_path)
    models = {m["name"]: m["versions"] for m in json.loads(listing.stdout)}
    assert models == {"tickets": ["1.0.0"], "intents": ["1.0.0"], "tags": ["1.0.0"]}


def test_keys_examples(tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(BIN.parent)
    env = {**os.environ, "LABELWISE_DATA_DIR": str(tmp_path / "labelwise-data"), "COLUMNS": "160"}
    env.pop("LABELWISE_DATABASE_URL", None)
    run(["bash", "-euo", "pipefail", "-c", readme_blocks()["keys"]], env, tmp_path)
    listing = run([str(BIN / "labelwise"), "keys", "list", "--json"], env, tmp_path)
    keys = json.loads(listing.stdout)
    assert [(k["name"], k["active"]) for k in keys] == [("billing-service", False)]
