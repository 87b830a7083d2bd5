"""Latency of `/v1/classify` with and without a `shadow` version scoring the same traffic in the background.

One uvicorn worker on loopback serves a linear TREC model (`production`); the same requests are sent before and
after a second version gets the `shadow` alias. Every text is new (a counter is appended), so the cache never
answers. Also checks that every response body is the same with the shadow as without it.

    .venv/bin/python bench/shadow.py                 # about 30 s; --requests 500 for a quicker run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from labelwise.api import create_app
from labelwise.config import Settings
from labelwise.domain import LabeledTexts
from labelwise.engines.linear import LinearEngine
from labelwise.registry.store import ModelStore
from labelwise.services.keys import KeyService
from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository, ModelRepository

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "trec"


def _engine(rows: list[dict[str, Any]]) -> LinearEngine:
    data = LabeledTexts(texts=[r["text"] for r in rows], labels=[(r["label"],) for r in rows])
    return LinearEngine(c_grid=(1.0,)).fit(data, data)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _load(base: str, key: str, texts: list[str], concurrency: int) -> tuple[list[float], list[Any], float]:
    latencies: list[float] = [0.0] * len(texts)
    bodies: list[Any] = [None] * len(texts)
    queue = iter(range(len(texts)))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in queue:
            started = time.perf_counter()
            r = await client.post("/v1/classify", json={"text": texts[i]}, headers={"x-api-key": key})
            latencies[i] = (time.perf_counter() - started) * 1000.0
            body = r.json()
            bodies[i] = (body["labels"], body["predicted"], body["model_version"])

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return latencies, bodies, time.perf_counter() - started


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines()]
    questions = [json.loads(line)["text"] for line in (DATA / "test.jsonl").read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), log_level="WARNING", model_poll_seconds=0.2)
        db = Database(settings.resolved_database_url())
        db.migrate()
        store = ModelStore(settings.models_dir, ModelRepository(db))
        store.publish("trec", _engine(rows[:2500]), metrics={}, data={})
        store.set_alias("trec", "production", "1.0.0")
        key, _ = KeyService(KeyRepository(db)).create("bench", ["classify"])
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), port=port, log_config=None, access_log=False, http="httptools")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not server.started or httpx.get(base + "/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("server not ready")
            time.sleep(0.05)
        lines = ["| shadow | connections | req/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
        same = True
        results: dict[tuple[bool, int], list[Any]] = {}
        for shadow in (False, True):
            if shadow:
                shadow_version = store.publish("trec", _engine(rows[2500:5000]), metrics={}, data={}).version
                store.set_alias("trec", "shadow", shadow_version)
                time.sleep(1.0)  # two poll intervals: the server sees the alias (bench, not a test)
            for concurrency in (1, 16):
                texts = [f"{questions[i % len(questions)]} {i}" for i in range(args.requests)]
                latencies, bodies, seconds = asyncio.run(_load(base, key, texts, concurrency))
                results[(shadow, concurrency)] = bodies
                lines.append(
                    f"| {'yes' if shadow else 'no'} | {concurrency} | {len(texts) / seconds:,.0f} | "
                    f"{statistics.median(latencies):.2f} | {_pct(latencies, 99):.2f} |"
                )
        for concurrency in (1, 16):
            same = same and results[(False, concurrency)] == results[(True, concurrency)]
        server.should_exit = True
        thread.join(timeout=30)
        db.dispose()
    lines.append("")
    lines.append(f"responses identical with and without the shadow: {same}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
