"""Overload: how fast refusals come back while the encoder saturates every core.

A real `labelwise serve` with 2 workers on loopback (SQLite, encoder preloaded) gets `--connections` keep-alive
connections (default 256), each sending zero-shot `POST /v1/batch` requests of `--texts` new texts (default 256)
against 10 labels, as fast as answers come back. Like `labelwise.Client`, a connection that gets 503 waits the
`Retry-After` seconds before its next request. The load generator is one asyncio process writing pre-built HTTP/1.1
requests on raw sockets, so it costs the server's cores little.

It reports, after `--warmup` seconds and for `--seconds` more: refusals (503) and admitted requests (200) with
their p50/p99 latency, admitted texts per second, and anything else (other statuses, 503s without Retry-After,
broken connections). Target: refusals p99 < 50 ms, admitted texts/s no lower than the baseline.

Each `--variant NAME=ENV` starts a fresh server with those extra environment variables (`KEY=VALUE,KEY=VALUE`),
one after the other in the same run, `--repeat` rounds of them interleaved (a busy machine then slows every
variant alike); the first is the baseline. By default: the encoder threads at the event loop's priority
(`LABELWISE_ENCODER_NICE=0`) against the default. Another checkout's code runs with `PYTHONPATH=CHECKOUT/src`.

    .venv/bin/python bench/overload.py                       # 2 variants x (5 s warm-up + 20 s), about 2 min
    .venv/bin/python bench/overload.py --repeat 2 --variant main=PYTHONPATH=../main/src --variant branch=

On a machine shared with other work, `nice -n -10` (as root) in front keeps the other processes from deciding
the figures; the server's encoder threads stay `LABELWISE_ENCODER_NICE` below its event loops either way.

The encoder model is derived into $LABELWISE_ENCODER_DIR (default: the test suite's cache; tens of seconds once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from serve import free_port, running

LABELS = [
    "sports", "politics", "cooking", "finance", "travel", "health", "music", "technology", "weather", "education",
]  # fmt: skip
SENTENCE = (
    "the team scored late in the final while the bank raised rates and the band played a new song about rain "
    "storms over the city as doctors warned of flu and the minister promised a budget for schools and trains"
)
WORDS = SENTENCE.split(" ")
DEFAULT_VARIANTS = ["before=LABELWISE_ENCODER_NICE=0", "after="]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass
class Tally:
    """What the connections saw inside the measured window."""

    refused: list[float] = field(default_factory=list)
    admitted: list[float] = field(default_factory=list)
    admitted_texts: int = 0
    refused_without_retry_after: int = 0
    other: dict[int, int] = field(default_factory=dict)
    broken: int = 0


def request_bytes(port: int, key: str, n_texts: int, counter: int, rng: random.Random) -> bytes:
    texts = [f"{' '.join(rng.choices(WORDS, k=12))} {counter}-{i}" for i in range(n_texts)]
    body = orjson.dumps({"texts": texts, "labels": LABELS})
    head = (
        f"POST /v1/batch HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-api-key: {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers


async def connection(
    port: int, key: str, n_texts: int, seed: int, start: float, stop: float, tally: Tally, ready: asyncio.Event
) -> None:
    rng = random.Random(seed)
    counter = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await ready.wait()
    while time.monotonic() < stop:
        counter += 1
        payload = request_bytes(port, key, n_texts, seed * 1_000_000 + counter, rng)
        sent = time.monotonic()
        try:
            writer.write(payload)
            await writer.drain()
            status, headers = await read_response(reader)
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            if sent >= start:
                tally.broken += 1
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        elapsed_ms = (time.monotonic() - sent) * 1000.0
        measured = start <= time.monotonic() <= stop
        if status == 503:
            retry_after = headers.get("retry-after")
            if measured:
                tally.refused.append(elapsed_ms)
                tally.refused_without_retry_after += retry_after is None
            await asyncio.sleep(float(retry_after or 1))
        elif status == 200:
            if measured:
                tally.admitted.append(elapsed_ms)
                tally.admitted_texts += n_texts
        elif measured:
            tally.other[status] = tally.other.get(status, 0) + 1
    writer.close()


async def load(port: int, key: str, args: argparse.Namespace) -> Tally:
    tally = Tally()
    ready = asyncio.Event()
    start = time.monotonic() + args.warmup + 1.0
    stop = start + args.seconds
    tasks = [
        asyncio.create_task(connection(port, key, args.texts, i + 1, start, stop, tally, ready))
        for i in range(args.connections)
    ]
    await asyncio.sleep(1.0)  # every connection open before the first request
    ready.set()
    await asyncio.gather(*tasks)
    return tally


def run_variant(name: str, extra_env: dict[str, str], args: argparse.Namespace, encoder_dir: Path) -> Tally:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        url = f"sqlite:///{data / 'labelwise.db'}"
        port = free_port()
        env = {
            **os.environ,
            "LABELWISE_DATA_DIR": str(data),
            "LABELWISE_DATABASE_URL": url,
            "LABELWISE_ENCODER_DIR": str(encoder_dir),
            "LABELWISE_PRELOAD_ENCODER": "true",
            "LABELWISE_LOG_LEVEL": "ERROR",
            "LABELWISE_PREDICTION_LOG_MAX_PER_SECOND": "100",
            **extra_env,
        }
        # The key is made by the variant's own code: another checkout may know other database migrations.
        code = f"import serve; print(serve.bench_key({url!r}))"
        made = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=Path(__file__).parent, check=True, capture_output=True, text=True
        )
        key = made.stdout.strip()
        command = [str(Path(sys.executable).with_name("labelwise")), "serve", "--port", str(port), "--workers", "2"]
        with running(command, env, f"http://127.0.0.1:{port}/ready", timeout=300):
            warm(f"http://127.0.0.1:{port}", key)
            return asyncio.run(load(port, key, args))


def warm(base: str, key: str) -> None:
    """Label vectors built and every worker's encoder run once (a few connections spread over both workers)."""
    for i in range(8):
        with httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=60) as client:
            client.post("/v1/batch", json={"texts": [f"warm up {i}"], "labels": LABELS}).raise_for_status()


def report(name: str, extra: str, tally: Tally, seconds: float) -> None:
    refused, admitted = tally.refused, tally.admitted
    print(f"{name} ({extra or 'defaults'}):")
    print(
        f"  refused (503)   {len(refused):6d}   p50 {percentile(refused, 0.5):8.1f} ms   "
        f"p99 {percentile(refused, 0.99):8.1f} ms   without Retry-After: {tally.refused_without_retry_after}"
    )
    print(
        f"  admitted (200)  {len(admitted):6d}   p50 {percentile(admitted, 0.5):8.1f} ms   "
        f"p99 {percentile(admitted, 0.99):8.1f} ms   {tally.admitted_texts / seconds:8.1f} texts/s"
    )
    if tally.other or tally.broken:
        print(f"  other statuses {tally.other}, broken connections {tally.broken}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--variant", action="append", help="NAME=KEY=VALUE,KEY=VALUE (repeatable; first: baseline)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every variant, interleaved")
    args = parser.parse_args()
    default_cache = Path(tempfile.gettempdir()) / "labelwise-test-encoder"
    encoder_dir = Path(os.environ.get("LABELWISE_ENCODER_DIR") or default_cache)
    variants = []
    for spec in args.variant or DEFAULT_VARIANTS:
        name, _, rest = spec.partition("=")
        pairs = dict(item.split("=", 1) for item in rest.split(",") if item)
        variants.append((name, rest, pairs))
    print(
        f"overload: {args.connections} connections x {args.texts}-text zero-shot batches, 2 workers, "
        f"{args.seconds:g} s measured after {args.warmup:g} s (cpus: {os.cpu_count()})"
    )
    for round_ in range(args.repeat):
        for name, rest, pairs in variants:
            tally = run_variant(name, pairs, args, encoder_dir)
            report(name if args.repeat == 1 else f"{name} #{round_ + 1}", rest, tally, args.seconds)


if __name__ == "__main__":
    main()
