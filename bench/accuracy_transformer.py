"""Accuracy and serving benchmark of the `transformer` engine, with the `embedding` engine as the baseline of the
same run (same splits, same machine, same moment).

    .venv/bin/python bench/accuracy_transformer.py --datasets sst2 [--epochs 3] [--time-budget 600]
        [--per-label 8] [--limit-test 2000] [--json out.json] [--data ../shared/data] [--keep DIR] [--threads N]
        [--no-baseline] [--no-serving]
    .venv/bin/python bench/accuracy_transformer.py --datasets sst2 --parity-from DIR
    .venv/bin/python bench/accuracy_transformer.py --datasets sst2 --serving-from DIR [--http-seconds 15]

`--time-budget` is the training budget in seconds of each dataset (training stops at the best epoch so far).
`--keep DIR` writes the fine-tuned PyTorch weights and head (`DIR/<dataset>/tuned.npz`) beside the saved model;
`--parity-from DIR` rebuilds the int8 graph from those weights with the current quantization code and measures
test-set parity and accuracy again without training (what a change to `encoder/quantize.py` is checked with).

Per dataset (official splits, validation as in bench/accuracy.py): the transformer engine is fine-tuned with its
defaults (all-MiniLM-L6-v2, batch 32, 64 tokens, AdamW 1e-4 with warm-up and linear decay) and evaluated on
test: accuracy (macro-F1 for multi-label; in-scope accuracy and out-of-scope recall for clinc150), ECE with its
noise floor, training seconds, and the int8-vs-PyTorch parity on the test set (agreement of decisions, the
largest probability difference). `--per-label N` keeps N training rows per label (the few-shot comparison).

Serving (in process, the saved model loaded as a server loads it, int8 ONNX, no PyTorch): texts per second for
batches of 64 test texts, one-text latency p50/p99, and the process's peak RSS, beside the same figures for the
embedding engine's model. `--serving-from DIR` measures a kept model (`DIR/<dataset>/model`) without training:
the in-process figures, and `/v1/classify` through a real `labelwise serve` (its default two workers) driven by
wrk at one connection with the dataset's test texts (a counter appended, so the result cache never answers).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from accuracy import headline, load_splits  # noqa: E402

from labelwise.domain import LabeledTexts  # noqa: E402
from labelwise.encoder import get_encoder  # noqa: E402
from labelwise.engines.base import Engine  # noqa: E402
from labelwise.engines.embedding import EmbeddingEngine  # noqa: E402
from labelwise.engines.transformer import TransformerEngine  # noqa: E402
from labelwise.training.metrics import evaluate  # noqa: E402


def per_label(data: LabeledTexts, n: int, seed: int = 13) -> LabeledTexts:
    """At most `n` rows of each (first) label, drawn with a fixed seed."""
    rng = random.Random(seed)
    order = list(range(len(data)))
    rng.shuffle(order)
    kept: dict[str, int] = {}
    rows = []
    for i in order:
        label = data.labels[i][0]
        if kept.get(label, 0) < n:
            kept[label] = kept.get(label, 0) + 1
            rows.append(i)
    return LabeledTexts([data.texts[i] for i in rows], [data.labels[i] for i in rows])


def scored(engine: Engine, test: LabeledTexts, seconds: float) -> dict[str, Any]:
    proba = engine.predict_proba(test.texts)
    metrics = evaluate(test.labels, proba, engine.classes_, engine.task_, engine.thresholds_)
    return {**headline(metrics, test.labels, proba, engine.classes_), "train_s": round(seconds, 1)}


def test_parity(engine: TransformerEngine, texts: list[str], base: str) -> dict[str, Any]:
    """int8 against PyTorch on the test texts, through the fine-tuned head and the chosen calibrator."""
    from labelwise.engines._transformer_train import Tuned, torch_logits
    from labelwise.engines.transformer import _parity

    head = engine._head
    tuned = Tuned(engine._tuned_weights, head.coef, head.intercept.astype(np.float32), {}, {})
    int8 = engine.features(texts).astype(np.float64) @ head.coef.astype(np.float64) + head.intercept
    return _parity(head, int8, torch_logits(tuned, base, texts, engine.window_tokens), engine.task_)


def keep(engine: TransformerEngine, folder: Path) -> None:
    """The fine-tuned weights and head, for `--parity-from`, and the saved model."""
    folder.mkdir(parents=True, exist_ok=True)
    head = engine._head
    weights = engine._tuned_weights or {}
    np.savez(folder / "tuned.npz", **{f"w:{k}": v for k, v in weights.items()}, coef=head.coef, bias=head.intercept)
    (folder / "model").mkdir(exist_ok=True)
    engine.save(folder / "model")


def parity_from(folder: Path, test: LabeledTexts) -> dict[str, Any]:
    """Rebuild the int8 graph of the kept weights with the current recipe; parity and accuracy on `test`."""
    from labelwise.engines._transformer_train import Tuned, torch_logits
    from labelwise.engines.transformer import TransformerEngine, default_base_model

    saved = np.load(folder / "tuned.npz")
    weights = {k[2:]: saved[k] for k in saved.files if k.startswith("w:")}
    engine = TransformerEngine.load(folder / "model")
    base = str(default_base_model())
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base).to_dict()
    engine.rebuild_int8(weights, config)
    cache = folder / "torch_test_logits.npy"
    head = engine._head
    tuned = Tuned(weights, head.coef, head.intercept.astype(np.float32), config, {})
    if cache.is_file():
        reference = np.load(cache)
    else:
        reference = torch_logits(tuned, base, test.texts, engine.window_tokens)
        np.save(cache, reference)
    from labelwise.engines.transformer import _parity

    int8 = engine.features(test.texts).astype(np.float64) @ head.coef.astype(np.float64) + head.intercept
    out = _parity(head, int8, reference, engine.task_)
    gold = [engine.classes_.index(labels[0]) for labels in test.labels]
    out["int8_accuracy"] = round(float(np.mean(np.argmax(int8, axis=1) == gold)), 5)
    out["torch_accuracy"] = round(float(np.mean(np.argmax(reference, axis=1) == gold)), 5)
    out["max_logit_difference"] = round(float(np.abs(int8 - reference).max()), 5)
    return out


def serving(engine: Engine, texts: list[str]) -> dict[str, Any]:
    """Load the saved model as a server does; batch throughput and one-text latency."""
    with tempfile.TemporaryDirectory() as folder:
        engine.save(Path(folder))
        kind = type(engine)
        loaded = kind.load(Path(folder), encoder=get_encoder(Path(tempfile.gettempdir()) / "labelwise-test-encoder"))
        batch = texts[:64]
        loaded.predict_proba(batch)
        rounds, started = 0, time.perf_counter()
        while time.perf_counter() - started < 5.0:
            loaded.predict_proba(batch)
            rounds += 1
        per_s = rounds * len(batch) / (time.perf_counter() - started)
        singles = []
        for text in texts[:300]:
            t = time.perf_counter()
            loaded.predict_proba([text])
            singles.append((time.perf_counter() - t) * 1000)
        rss = fresh_process_rss(kind, Path(folder), batch)
    return {
        "fresh_process_peak_rss_mb": rss,
        "batch64_texts_per_s": round(per_s, 1),
        "one_text_ms_p50": round(statistics.median(singles), 3),
        "one_text_ms_p99": round(float(np.percentile(singles, 99)), 3),
    }


def fresh_process_rss(kind: type[Engine], folder: Path, texts: list[str]) -> float:
    """Peak RSS (MB) of a new process that imports the API, loads the model and scores a batch: a worker's cost."""
    code = (
        "import sys, json; from pathlib import Path; import labelwise.api.app; "
        f"from {kind.__module__} import {kind.__name__} as K; from labelwise.encoder import get_encoder; "
        f"e = K.load(Path({str(folder)!r}), encoder=get_encoder(Path({str(Path(tempfile.gettempdir()))!r}) / "
        "'labelwise-test-encoder')); "
        f"e.predict_proba(json.loads({json.dumps(json.dumps(texts))})); "
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent (this benchmark, with PyTorch in it).
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0] / 1024); "
        "assert 'torch' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    return round(float(out.stdout.strip()), 1)


def http_latency(engine: Engine, texts: list[str], seconds: int) -> dict[str, Any]:
    """`/v1/classify` at one connection through a real `labelwise serve` with the model published (wrk)."""
    from serve import bench_key, free_port, labelwise_command, lua_script, run_wrk, running

    from labelwise.config import Settings
    from labelwise.registry.store import ModelStore
    from labelwise.storage.db import Database
    from labelwise.storage.repositories import ModelRepository

    with tempfile.TemporaryDirectory(prefix="labelwise-bench-") as tmp:
        work = Path(tmp)
        settings = Settings(data_dir=work / "data")
        key = bench_key(settings.resolved_database_url())  # migrates the database too
        db = Database(settings.resolved_database_url())
        ModelStore(settings.models_dir, ModelRepository(db)).publish("bench", engine, metrics={}, data={})
        db.dispose()
        script = lua_script(work, key, 0, texts)
        port = free_port()
        command, env = labelwise_command(port, work / "data")
        with running(command, env, f"http://127.0.0.1:{port}/ready"):
            run_wrk(port, script, 1, 3)  # warm-up
            rps, p50, p99, errors = run_wrk(port, script, 1, seconds)
    return {"classify_c1_req_per_s": round(rps, 1), "p50_ms": p50, "p99_ms": p99, "errors": errors}


def serving_from(args: argparse.Namespace) -> None:
    """Serving figures of kept models (`--keep`), in process and over HTTP, without training."""
    for name in [n for n in args.datasets.split(",") if n]:
        test = load_splits(args.data / name)[2]
        engine = TransformerEngine.load(args.serving_from / name / "model")
        row = {"in_process": serving(engine, test.texts), "http": http_latency(engine, test.texts, args.http_seconds)}
        print(name, json.dumps(row, indent=1), flush=True)


def serving_only(args: argparse.Namespace) -> None:
    """Serving figures of an imported classifier (the same int8 graph a fine-tuned model gets) and the embedding
    engine, on the first dataset's test texts."""
    from labelwise.engines.hf_import import import_classifier

    name = args.datasets.split(",")[0]
    train, val, test, multi = load_splits(args.data / name)
    encoder = get_encoder(Path(tempfile.gettempdir()) / "labelwise-test-encoder")
    baseline = EmbeddingEngine(encoder=encoder).fit(train, val, multi_label=multi)
    row = {
        "imported": serving(import_classifier(args.serving_only), test.texts),
        "embedding": serving(baseline, test.texts),
    }
    print(name, json.dumps(row, indent=1), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--datasets", default="sst2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=None, help="training seconds per dataset")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: the usable cores)")
    parser.add_argument("--learning-rate", type=float, default=None, help="the encoder's (default: the engine's)")
    parser.add_argument("--per-label", type=int, default=None)
    parser.add_argument("--limit-test", type=int, default=None)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the fine-tuned weights and the model here")
    parser.add_argument("--parity-from", type=Path, metavar="DIR", help="no training: parity of kept weights")
    parser.add_argument("--no-baseline", action="store_true", help="skip the embedding engine")
    parser.add_argument("--no-serving", action="store_true", help="skip the serving figures")
    parser.add_argument(
        "--serving-only",
        type=Path,
        metavar="HF_DIR",
        help="skip training: import this Hugging Face classifier and measure serving beside the embedding engine",
    )
    parser.add_argument(
        "--serving-from", type=Path, metavar="DIR", help="no training: serving figures of kept models (--keep)"
    )
    parser.add_argument("--http-seconds", type=int, default=15, help="length of the wrk run (--serving-from)")
    args = parser.parse_args()
    if args.serving_from:
        serving_from(args)
        return
    if args.serving_only:
        serving_only(args)
        return
    if args.parity_from:
        for name in [n for n in args.datasets.split(",") if n]:
            test = load_splits(args.data / name)[2]
            print(name, json.dumps(parity_from(args.parity_from / name, test), indent=1), flush=True)
        return
    results: dict[str, Any] = {}
    encoder = get_encoder(Path(tempfile.gettempdir()) / "labelwise-test-encoder")
    for name in [n for n in args.datasets.split(",") if n]:
        train, val, test, multi = load_splits(args.data / name)
        if args.per_label:
            train = per_label(train, args.per_label)
        if args.limit_test:
            test = LabeledTexts(test.texts[: args.limit_test], test.labels[: args.limit_test])
        row: dict[str, Any] = {"rows": {"train": len(train), "validation": len(val), "test": len(test)}}
        started = time.perf_counter()
        options = {"learning_rate": args.learning_rate} if args.learning_rate else {}
        engine = TransformerEngine(epochs=args.epochs, time_budget=args.time_budget, threads=args.threads, **options)
        engine.fit(train, val, multi_label=multi, progress=lambda step, f: print(f"\r{step} {f:.0%}  ", end=""))
        print()
        row["transformer"] = scored(engine, test, time.perf_counter() - started)
        row["transformer"]["fit"] = {k: engine.get_params()[k] for k in ("few_shot", "training", "parity")}
        if getattr(engine, "_tuned_weights", None) is not None:
            row["transformer"]["test_parity"] = test_parity(engine, test.texts, str(engine._base_dir()))
        if args.keep:
            keep(engine, args.keep / name)
        if not args.no_serving:
            row["transformer"]["serving"] = serving(engine, test.texts)
        if not args.no_baseline:
            started = time.perf_counter()
            baseline = EmbeddingEngine(encoder=encoder).fit(train, val, multi_label=multi)
            row["embedding"] = scored(baseline, test, time.perf_counter() - started)
            if not args.no_serving:
                row["embedding"]["serving"] = serving(baseline, test.texts)
        row["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        results[name] = row
        print(name, json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True), encoding="utf-8")


if __name__ == "__main__":
    main()
