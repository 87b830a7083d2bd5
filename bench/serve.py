"""Serving benchmark: Labelwise against the tutorial app it grew from, in one run, on banking77.

Both servers run with 2 workers on loopback and are trained from the same file (banking77 train.jsonl). wrk (Debian
package `wrk`) drives each scenario for a fixed time with one thread; every request carries a text never sent
before (a counter is appended), so Labelwise's result cache never answers and the engine path is what is measured.

Scenarios: single-text `/v1/classify` at 1, 16 and 64 connections; `/v1/batch` with 64 texts at 16 connections.
Reported: requests/s, p50 and p99 latency, texts/s; and for Labelwise, process start to `/ready`.

    .venv/bin/python bench/serve.py                 # about 2 minutes
    .venv/bin/python bench/serve.py --seconds 5     # quicker, noisier
    .venv/bin/python bench/serve.py --limits off,memory,redis,redis+credits --no-tutorial   # cost of limits

`--limits` runs Labelwise once per mode: `off` (no rate limit, unlimited credits: the default), `memory` (every
request counted against a per-key moving window in process memory), `redis` (the same window in Redis,
$LABELWISE_BENCH_REDIS_URL or redis://127.0.0.1:6379/14), and `+credits` (the key also has a balance, so every
request is debited in the database). The limit (`--rate-limit`, default 10000/second) is never reached: what is
measured is the cost of counting, not of refusing. `--overhead` times the same steps in process, without HTTP or
wrk (best of 5 rounds): far less noisy than the end-to-end numbers on a shared machine.

The tutorial app needs its own virtualenv (made at /tmp/tutorial-app when missing, as its README says). The
Labelwise model is trained with the product's Python API (`labelwise.data.load_dataset`, the `linear` engine,
`ModelStore.publish`) and served by `labelwise.api.server.serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data" / "banking77"
TUTORIAL = SHARED / "peers" / "tutorial-app"
TUTORIAL_VENV = Path("/tmp/tutorial-app")
TUTORIAL_KEY = "bench-key"
WORKERS = 2
BATCH = 64


@dataclass(frozen=True)
class Result:
    server: str
    scenario: str
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    texts_per_s: float
    errors: int


# Setup ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_tutorial_venv() -> Path:
    python = TUTORIAL_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TUTORIAL_VENV)], check=True)
        packages = ["fastapi", "uvicorn", "scikit-learn", "pandas", "joblib"]
        subprocess.run([str(TUTORIAL_VENV / "bin" / "pip"), "install", "-q", *packages], check=True)
    return python


def train_tutorial(work: Path) -> Path:
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines() if line.strip()]
    csv_path = work / "banking77.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([row["text"], row["label"]] for row in rows)
    artifacts = work / "tutorial-artifacts"
    subprocess.run(
        [str(ensure_tutorial_venv()), str(TUTORIAL / "train.py"), str(csv_path), str(artifacts)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return artifacts


def train_labelwise(
    data_dir: Path, modes: tuple[str, ...] = ("off",), rate_limit: str = "10000/second"
) -> dict[str, str]:
    """Train the linear engine on banking77 with the product's API, publish it, and return an API key per mode."""
    from labelwise.config import Settings
    from labelwise.data import load_dataset
    from labelwise.engines.factory import create_engine
    from labelwise.registry.store import ModelStore
    from labelwise.services.keys import KeyChanges, KeyService
    from labelwise.storage.db import Database
    from labelwise.storage.repositories import KeyRepository, ModelRepository

    settings = Settings(data_dir=data_dir)
    db = Database(settings.resolved_database_url())
    db.migrate()
    dataset = load_dataset(DATA / "train.jsonl", split=(0.8, 0.1, 0.1))
    engine = create_engine("linear").fit(dataset.train, dataset.validation)
    ModelStore(settings.models_dir, ModelRepository(db)).publish(
        "banking77", engine, metrics={}, data={"sha256": dataset.data_sha256}
    )
    keys = KeyService(KeyRepository(db))
    out = {}
    for mode in modes:
        limited, metered = mode != "off", mode.endswith("+credits")
        settings = KeyChanges(rate_limit=rate_limit if limited else None, credits=10**15 if metered else None)
        out[mode] = keys.create(f"bench-{mode}", ["classify"], settings=settings)[0]
    db.dispose()
    return out


def bench_key(database_url: str) -> str:
    """Migrate the database at `database_url` and make a `classify` key in it, for a server about to start on it."""
    from labelwise.services.keys import KeyService
    from labelwise.storage.db import Database
    from labelwise.storage.repositories import KeyRepository

    db = Database(database_url)
    db.migrate()
    key = KeyService(KeyRepository(db)).create("bench", ["classify"])[0]
    db.dispose()
    return key


REDIS_URL = os.environ.get("LABELWISE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
MODES = ("off", "memory", "redis", "memory+credits", "redis+credits")


# Servers -------------------------------------------------------------------------------------------------------


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until `url` answers 200; fails if the process exits or the deadline passes."""
    started = time.monotonic()
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise RuntimeError(f"{url} not ready within {timeout} s")


@contextmanager
def running(
    command: list[str], env: dict[str, str], ready_url: str, cwd: Path | None = None, timeout: float = 60.0
) -> Iterator[float]:
    """Run `command` until the block ends (SIGINT, then kill after 20 s); yields the seconds it took to be ready."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(ready_url, process, timeout)
        yield time.monotonic() - started
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def labelwise_command(port: int, data_dir: Path, mode: str = "off") -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {"LABELWISE_DATA_DIR": str(data_dir), "LABELWISE_PORT": str(port), "LABELWISE_LOG_LEVEL": "WARNING"}
    if mode.startswith("redis"):
        env |= {"LABELWISE_REDIS_URL": REDIS_URL, "LABELWISE_REDIS_KEY_PREFIX": f"bench-{os.getpid()}-{port}"}
    code = f"import labelwise.api.server as s, labelwise.config as c; s.serve(c.Settings(), {WORKERS})"
    return [sys.executable, "-c", code], env


def tutorial_command(port: int, artifacts: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ) | {"PEER_ARTIFACTS": str(artifacts), "API_KEY": TUTORIAL_KEY}
    uvicorn = str(TUTORIAL_VENV / "bin" / "uvicorn")
    command = [uvicorn, "app:app", "--port", str(port), "--workers", str(WORKERS), "--log-level", "warning"]
    return command, env


# Load ----------------------------------------------------------------------------------------------------------

# The head of every wrk script here (bench/embeddings_http.py too): the texts, a counter, the method and headers.
WRK_HEAD = """
local texts = {%(texts)s}
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-api-key"] = "%(key)s"
"""

LUA = (
    WRK_HEAD
    + """local function one()
  counter = counter + 1
  return '"' .. texts[(counter %% #texts) + 1] .. ' ' .. counter .. '"'
end
request = function()
  if %(batch)d > 0 then
    local parts = {}
    for i = 1, %(batch)d do parts[i] = one() end
    return wrk.format(nil, "/v1/batch", nil, '{"texts":[' .. table.concat(parts, ",") .. ']}')
  end
  return wrk.format(nil, "/v1/classify", nil, '{"text":' .. one() .. '}')
end
"""
)


def lua_script(work: Path, key: str, batch: int, texts: list[str] | None = None) -> Path:
    """A wrk script sending `texts` (default: banking77's test texts), each with a counter appended."""
    lines = [] if texts else (DATA / "test.jsonl").read_text().splitlines()
    rows = texts or [json.loads(line)["text"] for line in lines if line.strip()]
    # JSON-escaped bodies inside Lua long brackets, which need no further escaping.
    literals = ",".join(f"[==[{json.dumps(text)[1:-1]}]==]" for text in rows[:2000])
    path = work / f"load-{batch}.lua"
    path.write_text(LUA % {"texts": literals, "key": key, "batch": batch})
    return path


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if match is None:
        raise ValueError(f"unexpected wrk latency {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(port: int, script: Path, connections: int, seconds: int) -> tuple[float, float, float, int]:
    """Requests/s, p50 ms, p99 ms and non-2xx count of one wrk run (one thread, `seconds` long)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script)]
    out = subprocess.run([*command, f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    if socket_errors:
        print(f"    wrk: {socket_errors.group(0)}", file=sys.stderr)
    return rps, p50, p99, int(errors.group(1)) if errors else 0


def measure(name: str, port: int, work: Path, key: str, seconds: int) -> list[Result]:
    single, batch = lua_script(work, key, 0), lua_script(work, key, BATCH)
    run_wrk(port, single, 16, min(2, seconds))  # warm-up: imports, first requests, connection setup
    results = []
    for scenario, script, connections, per_request in [
        ("classify", single, 1, 1),
        ("classify", single, 16, 1),
        ("classify", single, 64, 1),
        (f"batch {BATCH}", batch, 16, BATCH),
    ]:
        rps, p50, p99, errors = run_wrk(port, script, connections, seconds)
        result = Result(name, scenario, connections, rps, p50, p99, rps * per_request, errors)
        print(f"  {name:9} {scenario:9} c={connections:<3} {rps:9.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms")
        results.append(result)
    return results


# Report --------------------------------------------------------------------------------------------------------


def report(results: list[Result], ready_s: list[float]) -> str:
    lines = [
        "| server | scenario | connections | req/s | p50 ms | p99 ms | texts/s | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.scenario} | {r.connections} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p99_ms:.2f} | {r.texts_per_s:,.0f} | {r.errors} |"
        )
    ours = {(r.scenario, r.connections): r for r in results if r.server == "labelwise"}
    theirs = {(r.scenario, r.connections): r for r in results if r.server == "tutorial"}
    lines += ["", *limits_cost(results, ours)]
    if ready_s:
        lines.append(
            f"- start to /ready (2 workers): {min(ready_s):.2f} s best, {max(ready_s):.2f} s worst of {len(ready_s)}"
        )
    if not ours or not theirs:
        return "\n".join(lines)
    single64 = ("classify", 64)
    batch = (f"batch {BATCH}", 16)
    lines += [
        f"- p50 at 1 connection: {ours[('classify', 1)].p50_ms:.2f} ms vs {theirs[('classify', 1)].p50_ms:.2f} ms",
        f"- throughput at 64 connections: {ours[single64].requests_per_s / theirs[single64].requests_per_s:.1f}x; "
        f"p99 {ours[single64].p99_ms / theirs[single64].p99_ms:.2f} of the tutorial's",
        f"- batch texts/s: {ours[batch].texts_per_s / theirs[batch].texts_per_s:.1f}x",
    ]
    return "\n".join(lines)


async def _per_call_us(step: Callable[[], Awaitable[object]], calls: int = 2000, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            await step()
            await asyncio.sleep(0)  # let background work run, as between requests in a server
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def overhead(work: Path, rate_limit: str) -> list[str]:
    """Microseconds each per-request step of limits and metering adds, measured in this process."""
    from labelwise.services.credits import CreditService, Payer, PriceList
    from labelwise.services.keys import KeyChanges, KeyService
    from labelwise.services.limits import LimiterBackend, RequestLimiter
    from labelwise.services.usage import UsageMeter
    from labelwise.storage.db import Database
    from labelwise.storage.repositories import KeyRepository, UsageRepository

    db = Database(f"sqlite:///{work / 'overhead.db'}")
    db.migrate()
    keys = KeyService(KeyRepository(db))
    prefix = keys.create("bench", settings=KeyChanges(credits=10**15))[1].prefix
    credits, payer = CreditService(keys.repo, PriceList({})), Payer(prefix, "/v1/classify", metered=True)
    meter = UsageMeter(UsageRepository(db))
    memory = RequestLimiter(LimiterBackend())
    redis = RequestLimiter(LimiterBackend(REDIS_URL, key_prefix=f"bench-{os.getpid()}"))

    async def record_usage() -> None:
        meter.record(prefix, "/v1/classify", texts=1, characters=40, credits=1)

    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("rate limit, memory (hit + window read)", lambda: memory.check_key(prefix, rate_limit)),
        ("rate limit, redis (hit + window read)", lambda: redis.check_key(prefix, rate_limit)),
        ("credit debit, SQLite (conditional UPDATE in a thread)", lambda: credits.debit(payer, 1)),
        ("usage record (in memory; flushed each second)", record_usage),
    ]
    lines = [f"- {name}: {await _per_call_us(step):.0f} us per request" for name, step in steps]
    await redis.close()
    db.dispose()
    return lines


def limits_cost(results: list[Result], off: dict[tuple[str, int], Result]) -> list[str]:
    """One line per limits mode and scenario: req/s and p50 against the same scenario with limits off."""
    lines = []
    for r in results:
        base = off.get((r.scenario, r.connections))
        if not r.server.startswith("labelwise/") or base is None:
            continue
        lines.append(
            f"- {r.server.split('/', 1)[1]} vs off, {r.scenario} c={r.connections}: "
            f"{r.requests_per_s / base.requests_per_s:.2f}x req/s, p50 {r.p50_ms - base.p50_ms:+.2f} ms"
        )
    return lines


def parse_modes(value: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in value.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"--limits: {', '.join(unknown) or 'none'}; choose from {', '.join(MODES)}")
    return modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--starts", type=int, default=3, help="how often to time Labelwise's start to /ready")
    parser.add_argument("--limits", type=parse_modes, default=("off",), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--rate-limit", default="10000/second", help="the key's limit in the limited modes")
    parser.add_argument("--no-tutorial", action="store_true", help="measure Labelwise only")
    parser.add_argument("--overhead", action="store_true", help="time limits and metering steps in process, exit")
    args = parser.parse_args()
    if args.overhead:
        with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as tmp:
            print("\n".join(asyncio.run(overhead(Path(tmp), args.rate_limit))))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    if not DATA.is_dir() or not TUTORIAL.is_dir():
        sys.exit(f"shared data or tutorial app not found under {SHARED}")
    with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as tmp:
        work = Path(tmp)
        print("training the models on banking77 ...", file=sys.stderr)
        keys = train_labelwise(work / "data", args.limits, args.rate_limit)
        results: list[Result] = []
        ready_s = []
        for _ in range(args.starts):
            port = free_port()
            command, env = labelwise_command(port, work / "data")
            with running(command, env, f"http://127.0.0.1:{port}/ready") as seconds:
                ready_s.append(seconds)
        for mode in args.limits:
            port = free_port()
            command, env = labelwise_command(port, work / "data", mode)
            with running(command, env, f"http://127.0.0.1:{port}/ready"):
                name = "labelwise" if mode == "off" else f"labelwise/{mode}"
                results += measure(name, port, work, keys[mode], args.seconds)
        if not args.no_tutorial:
            artifacts = train_tutorial(work)
            port = free_port()
            command, env = tutorial_command(port, artifacts)
            with running(command, env, f"http://127.0.0.1:{port}/health", cwd=TUTORIAL):
                results += measure("tutorial", port, work, TUTORIAL_KEY, args.seconds)
    print(report(results, ready_s))


if __name__ == "__main__":
    main()
