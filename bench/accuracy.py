"""Accuracy benchmark: the `linear` engine against the tutorial's TF-IDF + logistic regression, same run.

    .venv/bin/python bench/accuracy.py [--datasets sst2,trec] [--json out.json] [--data ../shared/data]

For every dataset under the data folder: official train/dev/test splits (without a dev split, a stratified
1/9 of train, seed 13, becomes validation). `linear` is trained with default settings and evaluated on test;
the yardstick (TF-IDF word 1-2-grams + LogisticRegression, class_weight balanced, the tutorial's settings) is
trained on the same labeled rows (train plus validation: everything `linear` sees) and evaluated on the same
test rows. The table shows accuracy (macro-F1 for multi-label), ECE, the ECE a perfectly calibrated model with
the same confidences would show on this many rows (the noise floor), training seconds, and the published
reference from the data folder's README.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from labelwise.domain import LabeledTexts, TaskType  # noqa: E402
from labelwise.engines.calibration import expected_calibration_error  # noqa: E402
from labelwise.engines.linear import LinearEngine  # noqa: E402
from labelwise.training.metrics import evaluate  # noqa: E402

OOS = "oos"


def read_jsonl(path: Path) -> LabeledTexts | None:
    """One JSON object a line: {"text", "label"} or {"text", "labels": [...]}; None when the file is absent."""
    if not path.exists():
        return None
    texts: list[str] = []
    labels: list[tuple[str, ...]] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                texts.append(str(row["text"]))
                labels.append(tuple(row["labels"]) if "labels" in row else (str(row["label"]),))
    return LabeledTexts(texts, labels)


def load_splits(folder: Path) -> tuple[LabeledTexts, LabeledTexts, LabeledTexts, bool]:
    """(train, validation, test, multi_label); validation carved from train when there is no dev file."""
    train = read_jsonl(folder / "train.jsonl")
    test = read_jsonl(folder / "test.jsonl")
    if train is None or test is None:
        raise SystemExit(f"{folder}: train.jsonl and test.jsonl are required")
    multi = any(len(labels) != 1 for labels in train.labels)
    dev = read_jsonl(folder / "dev.jsonl")
    if dev is None:
        from sklearn.model_selection import train_test_split

        index = np.arange(len(train))
        strata = None if multi else [labels[0] for labels in train.labels]
        fit_idx, val_idx = train_test_split(index, test_size=1 / 9, random_state=13, stratify=strata)
        dev = _subset(train, val_idx)
        train = _subset(train, fit_idx)
    return train, dev, test, multi


def _subset(data: LabeledTexts, index: Any) -> LabeledTexts:
    return LabeledTexts([data.texts[i] for i in index], [data.labels[i] for i in index])


def ece_floor(conf: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of a perfectly calibrated model with these confidences: outcomes drawn as Bernoulli(conf)."""
    rng = np.random.default_rng(seed)
    return float(np.mean([expected_calibration_error(conf, rng.random(len(conf)) < conf) for _ in range(draws)]))


def published(readme: Path) -> dict[str, str]:
    """The 'Published reference scores' bullets of the data README, the TF-IDF/SVM figure first."""
    found: dict[str, str] = {}
    if not readme.exists():
        return found
    for line in readme.read_text(encoding="utf-8").splitlines():
        match = re.match(r"- (\w+): (.*)", line)
        if match:
            parts = [p.strip().rstrip(".") for p in match.group(2).split(";")]
            linear = [p for p in parts if "TF-IDF" in p or "SVM" in p]
            found[match.group(1)] = (linear or parts)[0]
    return found


def headline(
    metrics: dict[str, Any], gold: list[tuple[str, ...]], proba: np.ndarray, classes: list[str]
) -> dict[str, Any]:
    """The figures of the table for one model on one test set."""
    if metrics["task"] == TaskType.MULTI_LABEL.value:
        conf = proba.ravel()
        out = {"metric": "macro-F1", "score": metrics["macro"]["f1"], "micro_f1": metrics["micro"]["f1"]}
    else:
        conf = proba.max(axis=1)
        out = {"metric": "accuracy", "score": metrics["accuracy"], "macro_f1": metrics["macro"]["f1"]}
    out["ece"] = metrics["ece"]
    out["ece_floor"] = ece_floor(conf)
    if OOS in classes:
        predicted = [classes[i] for i in np.argmax(proba, axis=1)]
        in_scope = [p == g[0] for p, g in zip(predicted, gold, strict=True) if g[0] != OOS]
        oos = [p == OOS for p, g in zip(predicted, gold, strict=True) if g[0] == OOS]
        out.update(metric="in-scope acc", score=float(np.mean(in_scope)), oos_recall=float(np.mean(oos)))
    return out


def run_linear(train: LabeledTexts, val: LabeledTexts, test: LabeledTexts, multi: bool) -> dict[str, Any]:
    started = time.perf_counter()
    engine = LinearEngine().fit(train, val, multi_label=multi)
    seconds = time.perf_counter() - started
    proba = engine.predict_proba(test.texts)
    metrics = evaluate(test.labels, proba, engine.classes_, engine.task_, engine.thresholds_)
    out = headline(metrics, test.labels, proba, engine.classes_)
    params = engine.get_params()
    out.update(train_s=seconds, C=params["C"], calibration=params["calibration"]["method"])
    out.update(serving_figures(engine, test.texts))
    return out


def serving_figures(engine: LinearEngine, texts: list[str]) -> dict[str, Any]:
    """Artifact size, load time, single-text latency (p50/p99 over up to 1,000 texts) and batch throughput."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        engine.save(folder)
        size = sum(p.stat().st_size for p in folder.iterdir())
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            loaded = LinearEngine.load(folder)
            loads.append(time.perf_counter() - started)
    sample = texts[:1000]
    loaded.predict_proba(sample[:50])  # warm the per-word cache as a serving process would be
    timings = []
    for text in sample:
        started = time.perf_counter()
        loaded.predict_proba([text])
        timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    loaded.predict_proba(texts)
    batch_s = time.perf_counter() - started
    return {
        "n_features": engine.get_params()["n_features"],
        "artifact_mb": size / 1e6,
        "load_ms": 1000 * min(loads),
        "single_ms_p50": 1000 * float(np.percentile(timings, 50)),
        "single_ms_p99": 1000 * float(np.percentile(timings, 99)),
        "batch_texts_per_s": len(texts) / batch_s,
    }


def run_tutorial(train: LabeledTexts, val: LabeledTexts, test: LabeledTexts, multi: bool) -> dict[str, Any]:
    """The tutorial's pipeline (one-vs-rest with a 0.5 threshold for multi-label, which it has no notion of)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MultiLabelBinarizer

    texts = train.texts + val.texts
    gold = train.labels + val.labels
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=100_000, sublinear_tf=True)
    started = time.perf_counter()
    if multi:
        binarizer = MultiLabelBinarizer().fit(gold)
        classes = [str(c) for c in binarizer.classes_]
        lr = OneVsRestClassifier(LogisticRegression(max_iter=200, class_weight="balanced"))
        pipe = make_pipeline(vectorizer, lr).fit(texts, binarizer.transform(gold))
    else:
        pipe = make_pipeline(vectorizer, LogisticRegression(max_iter=200, class_weight="balanced"))
        pipe.fit(texts, [g[0] for g in gold])
        classes = [str(c) for c in pipe.classes_]
    seconds = time.perf_counter() - started
    proba = pipe.predict_proba(test.texts)
    task = TaskType.MULTI_LABEL if multi else TaskType.SINGLE_LABEL
    metrics = evaluate(test.labels, proba, classes, task, None)
    out = headline(metrics, test.labels, proba, classes)
    out["train_s"] = seconds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--datasets", default="", help="comma-separated folder names (default: all)")
    parser.add_argument("--json", type=Path, help="write all figures here")
    parser.add_argument("--no-baseline", action="store_true", help="skip the tutorial pipeline")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"no datasets at {args.data}")
    names = [n for n in args.datasets.split(",") if n] or sorted(p.name for p in args.data.iterdir() if p.is_dir())
    refs = published(args.data / "README.md")
    results: dict[str, Any] = {}
    for name in names:
        train, val, test, multi = load_splits(args.data / name)
        row: dict[str, Any] = {"rows": {"train": len(train), "validation": len(val), "test": len(test)}}
        row["linear"] = run_linear(train, val, test, multi)
        if not args.no_baseline:
            row["tutorial"] = run_tutorial(train, val, test, multi)
        row["published"] = refs.get(name, "")
        results[name] = row
        print(format_row(name, row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True), encoding="utf-8")


def format_row(name: str, row: dict[str, Any]) -> str:
    lin = row["linear"]
    extra = f" oos-recall {lin['oos_recall']:.3f}" if "oos_recall" in lin else ""
    text = (
        f"{name:11s} {lin['metric']:13s} linear {100 * lin['score']:6.2f}{extra}  ECE {lin['ece']:.4f} "
        f"(floor {lin['ece_floor']:.4f})  {lin['train_s']:6.1f}s  C={lin['C']:g} {lin['calibration']}"
    )
    tut = row.get("tutorial")
    if tut:
        extra = f" oos-recall {tut['oos_recall']:.3f}" if "oos_recall" in tut else ""
        text += f" | tutorial LR {100 * tut['score']:6.2f}{extra} ECE {tut['ece']:.4f} {tut['train_s']:5.1f}s"
    text += f" | published: {row['published'] or 'n/a'}"
    return text + (
        f"\n{'':11s} serving: {lin['n_features']:,} features, {lin['artifact_mb']:.1f} MB,"
        f" load {lin['load_ms']:.0f} ms,"
        f" one text p50 {lin['single_ms_p50']:.3f} ms p99 {lin['single_ms_p99']:.3f} ms,"
        f" batch {lin['batch_texts_per_s']:,.0f} texts/s"
    )


if __name__ == "__main__":
    main()
