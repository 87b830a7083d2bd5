"""A real `labelwise serve` (the CLI, its default workers) on a PostgreSQL of the test's own, which is stopped and
started again under it.

While the database is down: every route that needs it answers 503 `storage_unavailable` with `Retry-After`, in its
surface's error shape; classify with a key the workers verified before keeps answering 200, also after the key
cache's lifetime; a key with a credit balance gets 503 (its debit needs the database), so nothing is served unpaid;
/ready is 503. When the database is back, everything answers again without a restart, and the usage ledger and the
balance are exact: every 200 counted once, no 503 counted. The log says "unavailable" and "available again" at most
once per worker, never per request.

Run with `-s` to see the figures it measures (time to the first 503, time to recover, usage rows).
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.serving_fakes import Fixture, make_settings, wait_all_ready, wait_until
from tests.integration.private_postgres import PrivatePostgres
from tests.integration.real_server import RunningServer, answering_worker, labelwise_serve, worker_pids

from labelwise.domain import LabeledTexts
from labelwise.engines.linear import LinearEngine
from labelwise.services.keys import KeyChanges, split_key

BALANCE = 10_000
KEY_CACHE_SECONDS = 5.0  # `create_app`'s default: how long a worker trusts a key it verified


def _engine(shared_data: Path) -> LinearEngine:
    rows = [json.loads(line) for line in (shared_data / "trec" / "train.jsonl").read_text().splitlines()[:400]]
    data = LabeledTexts(texts=[r["text"] for r in rows], labels=[(r["label"],) for r in rows])
    return LinearEngine(c_grid=(1.0,)).fit(data, data)


def _classify(server: RunningServer, key: str, text: str) -> tuple[int, int]:
    """POST /v1/classify on a new connection; (status, pid of the worker that answered)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        body = json.dumps({"text": text})
        headers = {"x-api-key": key, "content-type": "application/json"}
        connection.request("POST", "/v1/classify", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, answering_worker(server, connection)
    finally:
        connection.close()


def _on_every_worker(server: RunningServer, key: str, label: str) -> int:
    """Classify on fresh connections until every worker has answered 200 at least twice; how many were sent."""
    workers, served, sent = worker_pids(server), Counter[int](), 0
    while any(served[w] < 2 for w in workers):
        status, pid = _classify(server, key, f"What is the capital of {label} number {sent} ?")
        assert status == 200
        served[pid] += 1
        sent += 1
        assert sent < 400, served
    return sent


def _usage(client: httpx.Client, key: str) -> dict[str, Any]:
    r = client.get("/v1/usage", params={"key": key})
    assert r.status_code == 200, r.text
    total: dict[str, Any] = r.json()["total"]
    return total


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the default is one worker per core: needs two or more")
def test_postgres_outage_answers_503_and_loses_no_usage(tmp_path: Path, shared_data: Path) -> None:
    pg = PrivatePostgres()
    try:
        pg.start()
        data = tmp_path / "data"
        data.mkdir()
        fixture = Fixture(make_settings(data, pg.url))
        fixture.publish("trec", _engine(shared_data))
        unmetered, _ = fixture.keys.create("ops", ["classify", "admin"])
        metered, metered_info = fixture.keys.create("paying", ["classify"], settings=KeyChanges(credits=BALANCE))
        env = {"LABELWISE_DATA_DIR": str(data), "LABELWISE_DATABASE_URL": pg.url}
        with labelwise_serve(env) as server:
            admin = httpx.Client(base_url=server.base, headers={"x-api-key": unmetered}, timeout=30)
            workers = len(worker_pids(server))
            # Before: both keys known to every worker, their usage on the ledger.
            before = _on_every_worker(server, unmetered, "country")
            paid = _on_every_worker(server, metered, "city")
            wait_until(lambda: _usage(admin, split_key(unmetered))["requests"] == before, timeout=30)
            wait_until(lambda: _usage(admin, metered_info.prefix)["requests"] == paid, timeout=30)

            pg.stop()
            stopped = time.monotonic()
            first = admin.get("/v1/usage")
            to_first_503 = time.monotonic() - stopped
            _unavailable(first)
            assert first.json()["error"]["code"] == "storage_unavailable"
            assert first.json()["error"]["request_id"]
            answer_ms = []
            for _ in range(20):
                started = time.perf_counter()
                _unavailable(admin.get("/v1/usage"))
                answer_ms.append((time.perf_counter() - started) * 1000)
            answer_ms.sort()
            _unavailable(admin.get("/v1/keys"))
            _unavailable(admin.post("/v1/keys", json={"name": "new", "scopes": ["classify"]}))
            _unavailable(admin.get("/v1/jobs/job_missing"))
            assert admin.get("/ready").status_code == 503
            # A key no worker has seen cannot be checked: 503, not 401.
            _unavailable(admin.post("/v1/classify", headers={"x-api-key": "lw_00000000_unknown"}, json={"text": "x"}))
            # The paying key: its debit needs the database. Each surface answers in its own shape.
            paying = {"x-api-key": metered}
            native = admin.post("/v1/classify", headers=paying, json={"text": "Who wrote Hamlet ?"})
            _unavailable(native)
            assert native.json()["error"]["code"] == "storage_unavailable"
            vllm = admin.post("/classify", headers=paying, json={"model": "trec", "input": "Who wrote Hamlet ?"})
            _unavailable(vllm)
            assert vllm.json()["error"]["code"] == 503
            assert vllm.json()["error"]["type"] == "server_error"
            # The key that pays nothing keeps classifying, past the key cache's lifetime too.
            during = 0
            while time.monotonic() - stopped < KEY_CACHE_SECONDS + 1.5 or during < 20:
                status, _ = _classify(server, unmetered, f"Where is the river number {during} ?")
                assert status == 200
                during += 1
            during += _on_every_worker(server, unmetered, "mountain")

            pg.start()
            restarted = time.monotonic()
            wait_all_ready(server.base, timeout=60)
            wait_until(lambda: admin.get("/v1/usage").status_code == 200, timeout=60)
            to_recover = time.monotonic() - restarted
            after = _on_every_worker(server, unmetered, "lake")
            expected = before + during + after
            # Every worker flushes what it held (once): the ledger reaches the exact count and stays there.
            wait_until(lambda: _usage(admin, split_key(unmetered))["requests"] == expected, timeout=30)
            assert _usage(admin, metered_info.prefix)["requests"] == paid
            assert _usage(admin, metered_info.prefix)["credits"] == paid
            admin.close()
        assert fixture.keys.get(metered_info.prefix).credits == BALANCE - paid
        fixture.close()
        lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
        down = [x for x in lines if x["msg"].startswith("database unavailable")]
        up = [x for x in lines if x["msg"] == "database available again"]
        assert 1 <= len(down) <= workers, down
        assert 1 <= len(up) <= workers, up
        assert not [x for x in lines if x["level"] == "ERROR"], [x["msg"] for x in lines if x["level"] == "ERROR"]
        print(
            f"\nfigures: first 503 {to_first_503 * 1000:.0f} ms after the stop; 20 more 503s median "
            f"{answer_ms[10]:.1f} ms, max {answer_ms[-1]:.1f} ms; ready and /v1/usage 200 "
            f"{to_recover:.2f} s after the start; usage requests before {before}, during the outage {during}, "
            f"after {after}, on the ledger {expected}; paying key {paid} before, 503 during, balance "
            f"{BALANCE} -> {BALANCE - paid}; log lines: {len(down)} unavailable, {len(up)} available again"
        )
    finally:
        pg.close()
