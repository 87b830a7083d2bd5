"""Zero-shot latency over HTTP: one text against 10 labels on `POST /v1/classify`, sequential requests on one
keep-alive connection to a real server (1 worker, encoder preloaded), every text new (a counter is appended).

Baselines measured in the same run, interleaved with it: `GET /health` on the same connection (the HTTP and
framework floor) and the encoder called in this process on the same texts (the model floor). Target: median <= 10 ms.

    .venv/bin/python bench/zeroshot_http.py                 # 500 requests, about 20 s with the encoder cached
    .venv/bin/python bench/zeroshot_http.py --requests 2000

The encoder model is derived into $LABELWISE_ENCODER_DIR (default: a temporary directory, tens of seconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from serve import bench_key, free_port, running

from labelwise.encoder import get_encoder

LABELS = [
    "sports", "politics", "cooking", "finance", "travel", "health", "music", "technology", "weather", "education",
]  # fmt: skip
TEXT = "The home team scored in the last minute and won the cup final"


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return f"p50 {statistics.median(ordered):6.2f} ms   p90 {p(0.9):6.2f} ms   p99 {p(0.99):6.2f} ms"


def timed(n: int, call: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - started) * 1000.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        encoder_dir = Path(os.environ.get("LABELWISE_ENCODER_DIR") or data / "encoder")
        url = f"sqlite:///{data / 'labelwise.db'}"
        data.mkdir()
        key = bench_key(url)
        port = free_port()
        env = {
            **os.environ,
            "LABELWISE_DATA_DIR": str(data),
            "LABELWISE_DATABASE_URL": url,
            "LABELWISE_ENCODER_DIR": str(encoder_dir),
            "LABELWISE_PRELOAD_ENCODER": "true",
            "LABELWISE_PORT": str(port),
            "LABELWISE_LOG_LEVEL": "WARNING",
        }
        code = "import labelwise.api.server as s, labelwise.config as c; s.serve(c.Settings(), 1)"
        base = f"http://127.0.0.1:{port}"
        with (
            running([sys.executable, "-c", code], env, base + "/ready", timeout=300),
            httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=30) as client,
        ):

            def classify(i: int) -> object:
                r = client.post("/v1/classify", json={"text": f"{TEXT} {i}", "labels": LABELS})
                r.raise_for_status()
                return r

            encoder = get_encoder(encoder_dir)
            for i in range(50):  # warm-up: connection, label vectors, ONNX Runtime's first shapes
                classify(-i - 1)
                encoder.encode([f"{TEXT} {-i - 1}"])
            # Interleaved, one of each per round, so a busy machine slows all three alike.
            health: list[float] = []
            zeroshot: list[float] = []
            in_process: list[float] = []
            inference: list[float] = []
            for i in range(args.requests):
                health += timed(1, lambda _: client.get("/health"))
                started = time.perf_counter()
                answer = classify(i)
                zeroshot.append((time.perf_counter() - started) * 1000.0)
                inference.append(float(answer.headers["x-inference-time"]))  # type: ignore[attr-defined]
                in_process += timed(1, lambda _, i=i: encoder.encode([f"{TEXT} {i}"]))
    print(
        f"zero-shot over HTTP, 1 text x {len(LABELS)} labels, {args.requests} sequential requests "
        f"(cpus: {os.cpu_count()})"
    )
    print(f"  POST /v1/classify      {percentiles(zeroshot)}")
    print(f"  GET /health (floor)    {percentiles(health)}")
    print(f"  encoder in process     {percentiles(in_process)}")
    print(f"  server x-inference-time median {statistics.median(inference):.2f} ms")
    print(f"  target: median <= 10 ms: {'met' if statistics.median(zeroshot) <= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
