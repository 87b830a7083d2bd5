"""`/metrics` of a real two-worker server: every scrape, whichever worker answers it, counts every worker's requests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.api.serving_fakes import Fixture, make_settings, wait_all_ready, wait_until

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
