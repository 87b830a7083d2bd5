"""`/metrics` of a real multi-worker server: every scrape, whichever worker answers it, counts every worker's
requests; with the operator's own PROMETHEUS_MULTIPROC_DIR and without one (the CLI's default)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter as Tally
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.api.serving_fakes import Fixture, make_settings, wait_all_ready, wait_until
from tests.integration.real_server import answering_worker, labelwise_serve, worker_pids

from labelwise.domain import LabeledTexts
from labelwise.engines.linear import LinearEngine

REQUESTS = 40


def _engine(shared_data: Path) -> LinearEngine:
    rows = [json.loads(line) for line in (shared_data / "trec" / "train.jsonl").read_text().splitlines()[:400]]
    data = LabeledTexts(texts=[r["text"] for r in rows], labels=[(r["label"],) for r in rows])
    return LinearEngine(c_grid=(1.0,)).fit(data, data)


def _classified(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "labelwise_requests_total" and sample.labels["route"] == "/v1/classify":
                return sample.value
    return 0.0


def test_two_workers_report_all_requests(tmp_path: Path, shared_data: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'labelwise.db'}")
    (tmp_path / "data").mkdir()
    fixture = Fixture(settings)
    fixture.publish("trec", _engine(shared_data))
    admin = {"x-api-key": fixture.key("admin")}
    fixture.close()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {
        "LABELWISE_DATA_DIR": str(tmp_path / "data"),
        "LABELWISE_PORT": str(port),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    code = "from labelwise.api.server import serve; from labelwise.config import Settings; serve(Settings(), workers=2)"
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_all_ready(base)
        for i in range(REQUESTS):
            # A new connection each time, so the kernel spreads them over both workers' accept queues.
            with httpx.Client(base_url=base, headers=admin) as client:
                r = client.post("/v1/classify", json={"text": f"What is the capital of country number {i} ?"})
                assert r.status_code == 200, r.text
        # Both workers served (each writes its own counter file) ...
        wait_until(lambda: len(list(metrics_dir.glob("counter_*.db"))) >= 2, timeout=30)
        # ... and every scrape sees the sum, whichever worker answers it.
        for _ in range(6):
            with httpx.Client(base_url=base, headers=admin) as client:
                r = client.get("/metrics")
            assert r.status_code == 200
            assert _classified(r.text) == REQUESTS
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr


def _samples(text: str, name: str, route: str | None = None, model: str | None = None) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            if route is not None and sample.labels.get("route") != route:
                continue
            if model is not None and sample.labels.get("model") != model:
                continue
            total += sample.value
    return total


def test_cli_server_with_default_workers_reports_every_request(tmp_path: Path, shared_data: Path) -> None:
    """`labelwise serve` as an operator starts it: the CLI, the default worker count, no PROMETHEUS_MULTIPROC_DIR.
    The CLI imports prometheus-client before `serve` runs, which left each worker counting only for itself."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the default is one worker per core: this needs two cores or more")
    data = tmp_path / "data"
    data.mkdir()
    fixture = Fixture(make_settings(data, f"sqlite:///{data / 'labelwise.db'}"))
    fixture.publish("trec", _engine(shared_data))
    admin = {"x-api-key": fixture.key("admin"), "content-type": "application/json"}
    fixture.close()
    with labelwise_serve({"LABELWISE_DATA_DIR": str(data)}) as server:
        workers = worker_pids(server)
        assert len(workers) == os.cpu_count()
        served: Tally[int] = Tally()
        sent = 0
        # A new connection per request, so the kernel spreads them over the workers; on until each has served some.
        while sent < REQUESTS or (set(served) != workers and sent < 400):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            body = json.dumps({"text": f"What is the capital of country number {sent} ?"})
            connection.request("POST", "/v1/classify", body=body, headers=admin)
            response = connection.getresponse()
            assert response.status == 200, response.read()
            response.read()
            served[answering_worker(server, connection)] += 1
            connection.close()
            sent += 1
        assert set(served) == workers, served
        with httpx.Client(base_url=server.base, headers=admin) as client:
            scrape = client.get("/metrics")
        assert scrape.status_code == 200
    text = scrape.text
    assert _samples(text, "labelwise_requests_total", route="/v1/classify") == sent
    assert _samples(text, "labelwise_request_duration_ms_count", route="/v1/classify") == sent
    assert _samples(text, "labelwise_inference_ms_count", model="trec") == sent
    assert _samples(text, "labelwise_queue_ms_count", model="trec") == sent
    assert _samples(text, "labelwise_predictions_total", model="trec") == sent  # one label per text
    assert _samples(text, "labelwise_confidence_count", model="trec") == sent
