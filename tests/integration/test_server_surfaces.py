"""A real `labelwise serve` (its default two workers): every route's declared access is enforced, and every
inference surface answers through the one response path (same headers, a usage row, a log line with the same
fields)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.api.serving_fakes import Fixture, make_settings, wait_all_ready, wait_until
from tests.api.test_access import EXPECTED
from tests.api.test_response_path import HEADERS, LOG_FIELDS, SCOPES, SURFACES, ours
from tests.conftest import encoder_cache_dir
from tests.llm_upstream import MODEL_ALIAS

from labelwise.domain import LabeledTexts
from labelwise.engines.linear import LinearEngine
from labelwise.services.keys import KeyChanges
from labelwise.training.pipeline import tune_abstain

SAMPLE_PARAMS = {
    "{name}": "intents",
    "{version}": "1.0.0",
    "{alias}": "canary",
    "{plot}": "reliability",
    "{prefix}": "abcdefgh",
    "{job_id}": "job_missing",
    "{path:path}": "app.js",
}


@dataclass
class Server:
    base: str
    keys: dict[str, str]
    log: Path  # the server's stderr: JSON lines, one per record

    def log_lines(self) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def _rows(shared_data: Path, start: int, stop: int) -> LabeledTexts:
    lines = (shared_data / "trec" / "train.jsonl").read_text().splitlines()[start:stop]
    rows = [json.loads(line) for line in lines]
    return LabeledTexts(texts=[r["text"] for r in rows], labels=[(r["label"],) for r in rows])


def _engine(shared_data: Path) -> LinearEngine:
    # Validated on rows it does not train on: the abstain rule is tuned on those held-out scores (`heldout_`);
    # validated on its own training rows it would be right on all of them and the rule would never fire.
    return LinearEngine(c_grid=(1.0,)).fit(_rows(shared_data, 0, 400), _rows(shared_data, 400, 800))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_data_module: Path, llm_upstream: str) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("surfaces")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "data").mkdir()
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'labelwise.db'}")
    fixture = Fixture(settings)
    engine = _engine(shared_data_module)
    # The version carries an abstain rule tuned on held-out rows, as `labelwise train` gives every version.
    held_out = _rows(shared_data_module, 400, 800)
    tuned = tune_abstain(engine, held_out, engine.predict_proba(held_out.texts), None, 0.95)
    fixture.store.publish("intents", engine, metrics={"abstain": tuned}, data={"rows": 400})
    metered, _ = fixture.keys.create("metered", SCOPES, settings=KeyChanges(credits=100_000, rate_limit="1000/minute"))
    keys = {"metered": metered, "train": fixture.key("train"), "admin": fixture.key("admin")}
    fixture.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {
        "LABELWISE_DATA_DIR": str(tmp_path / "data"),
        "LABELWISE_PORT": str(port),
        "LABELWISE_ENCODER_DIR": str(encoder_cache_dir()),
        "LABELWISE_USAGE_FLUSH_SECONDS": "0.2",
        "LABELWISE_LOG_LEVEL": "INFO",
        "LABELWISE_AUTH_FAILURE_LIMIT": "1000/minute",  # the access test fails authentication on purpose, often
        "LABELWISE_LLM_URL": llm_upstream,
        "LABELWISE_LLM_MODEL": MODEL_ALIAS,
    }
    code = "from labelwise.cli.app import app; app(['serve'])"
    log = tmp_path / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=stderr, text=True)
        try:
            wait_all_ready(f"http://127.0.0.1:{port}")
            yield Server(f"http://127.0.0.1:{port}", keys, log)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def shared_data_module() -> Path:
    from tests.conftest import shared_data_dir

    path = shared_data_dir()
    if not (path / "trec").exists():
        pytest.skip("the shared datasets are not available")
    return path


def _url(path: str) -> str:
    for param, value in SAMPLE_PARAMS.items():
        path = path.replace(param, value)
    return path


def test_declared_access_is_enforced_by_the_real_server(server: Server) -> None:
    trainer = {"x-api-key": server.keys["train"]}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for (method, path), access in EXPECTED.items():
            anonymous = client.request(method, _url(path))
            if access == "public":
                assert anonymous.status_code not in (401, 403), (method, path)
                continue
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            with_train_key = client.request(method, _url(path), headers=trainer)
            if access in ("classify", "admin", "generate"):
                # 403, except where a surface's documented error shape has no such code (categories: 401).
                assert with_train_key.status_code in (401, 403), (method, path, with_train_key.text)
                assert "lacks the" in with_train_key.text, (method, path, with_train_key.text)
            else:
                assert with_train_key.status_code not in (401, 403), (method, path, with_train_key.text)


def test_every_surface_answers_through_one_response_path(server: Server) -> None:
    key = server.keys["metered"]
    request_ids: dict[str, str] = {}
    for surface, (route, body, scheme) in SURFACES.items():
        sent = {"x-api-key": key} if scheme == "x-api-key" else {"Authorization": f"{scheme} {key}"}
        # A fresh connection per request: the kernel spreads them over both workers.
        with httpx.Client(base_url=server.base, timeout=60) as client:
            r = client.post(route, json=body, headers=sent)
        assert r.status_code == 200, (surface, r.text)
        assert ours(r.headers) == HEADERS, surface
        request_ids[r.headers["x-request-id"]] = route

    def usage_rows() -> dict[str, tuple[int, int]]:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            data = client.get("/v1/usage", headers={"x-api-key": server.keys["admin"]}).json()["data"]
        return {row["route"]: (row["requests"], row["texts"]) for row in data}

    # Each worker flushes its usage every 0.2 s: poll until both have written theirs.
    routes = {route for route, _, _ in SURFACES.values()}
    wait_until(lambda: routes <= set(usage_rows()), timeout=30)
    assert {route: usage_rows()[route] for route in routes} == dict.fromkeys(routes, (1, 1))

    # One access log line per request, each with the same fields.
    wait_until(lambda: request_ids.keys() <= {line.get("request_id") for line in server.log_lines()}, timeout=30)
    logged = [line for line in server.log_lines() if line.get("request_id") in request_ids and "route" in line]
    assert sorted(str(line["request_id"]) for line in logged) == sorted(request_ids)
    for line in logged:
        assert set(line) >= LOG_FIELDS, line
        assert (line["route"], line["status"], line["texts"]) == (request_ids[str(line["request_id"])], 200, 1)


def test_the_versions_abstain_rule_holds_on_both_workers(server: Server, shared_data_module: Path) -> None:
    texts = [*_rows(shared_data_module, 1000, 1064).texts, "qwxz plmk"]
    key = {"x-api-key": server.keys["metered"]}
    for _ in range(4):  # fresh connections: the kernel spreads them over both workers
        with httpx.Client(base_url=server.base, timeout=60) as client:
            results = client.post("/v1/batch", json={"texts": texts, "top_k": 2}, headers=key).json()["results"]
            overridden = client.post(
                "/v1/batch", json={"texts": texts, "min_confidence": 0, "min_margin": 0}, headers=key
            ).json()["results"]
            detail = client.get("/v1/models/intents", headers=key).json()
        rule = detail["versions"][0]["metrics"]["abstain"]
        abstained = [r["abstained"] for r in results]
        assert any(abstained)
        assert not all(abstained)
        assert abstained[-1]  # words the model never saw
        for r in results:
            best, second = (s["score"] for s in r["labels"])
            unsure = best < rule["min_confidence"] or best - second < rule["min_margin"]
            assert (r["abstained"], r["predicted"] == []) == (unsure, unsure)
        assert not any(r["abstained"] for r in overridden)
