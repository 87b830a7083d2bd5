"""Abstain benchmark: what the tuned abstain rule costs and buys on the shared datasets, with and without it.

    .venv/bin/python bench/abstain.py [--datasets clinc150,banking77,trec] [--targets 0.9,0.95] [--json out.json]

For each dataset: `linear` with default settings on the official splits (as bench/accuracy.py: without a dev
split, a stratified 1/9 of train becomes validation), the abstain rule tuned on validation by the training
pipeline's own code (`training.pipeline.tune_abstain`) for each target precision, then on test: the precision of
the decisions kept, coverage (the share decided), and accuracy counting an abstention as wrong. On clinc150,
whose out-of-scope texts are the label `oos`, an abstention counts as answering "out of scope": out-of-scope
recall is the share of `oos` texts predicted `oos` or abstained on, in-scope accuracy the share of in-scope texts
given their right intent (abstaining on one is a miss), the metrics of Larson et al. 2019.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from accuracy import OOS, load_splits  # noqa: E402

from labelwise.domain import LabeledTexts  # noqa: E402
from labelwise.engines.abstain import NEVER, AbstainRule, rule_of  # noqa: E402
from labelwise.engines.linear import LinearEngine  # noqa: E402
from labelwise.training.pipeline import tune_abstain  # noqa: E402


def figures(classes: list[str], proba: np.ndarray, test: LabeledTexts, rule: AbstainRule) -> dict[str, Any]:
    """Test-set figures of one rule (`NEVER`: no rule)."""
    predicted = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    gold = np.asarray([labels[0] for labels in test.labels], dtype=object)
    kept = ~rule.fires(proba)
    right = predicted == gold
    out: dict[str, Any] = {
        "coverage": float(kept.mean()),
        "precision_kept": float(right[kept].mean()) if kept.any() else 0.0,
        "accuracy": float((right & kept).mean()),
    }
    if OOS in classes:
        oos = gold == OOS
        out["oos_recall"] = float(((predicted[oos] == OOS) | ~kept[oos]).mean())
        out["in_scope_accuracy"] = float((right & kept)[~oos].mean())
    return out


def run(folder: Path, targets: list[float]) -> dict[str, Any]:
    train, val, test, multi = load_splits(folder)
    if multi:
        raise SystemExit(f"{folder.name}: multi-label models have no abstain rule")
    started = time.perf_counter()
    engine = LinearEngine().fit(train, val)
    seconds = time.perf_counter() - started
    val_proba = engine.predict_proba(val.texts)
    proba = engine.predict_proba(test.texts)
    result: dict[str, Any] = {"train_s": seconds, "without": figures(engine.classes_, proba, test, NEVER)}
    for target in targets:
        tuned = tune_abstain(engine, val, val_proba, None, target)
        assert tuned is not None
        rule = rule_of({"abstain": tuned})
        result[f"target {target}"] = {
            **rule.as_dict(),
            "validation_precision": tuned["precision"],
            "validation_coverage": tuned["coverage"],
            **figures(engine.classes_, proba, test, rule),
        }
    return result


def show(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name} (linear trained in {result['train_s']:.0f} s)")
    print(f"{'rule':<14} {'conf':>6} {'margin':>6} {'coverage':>8} {'prec kept':>9} {'accuracy':>8}  clinc150")
    for key, row in result.items():
        if key == "train_s":
            continue
        conf = f"{row['min_confidence']:.3f}" if "min_confidence" in row else "-"
        margin = f"{row['min_margin']:.3f}" if "min_margin" in row else "-"
        extra = ""
        if "oos_recall" in row:
            extra = f"  in-scope acc {100 * row['in_scope_accuracy']:.1f} / oos recall {100 * row['oos_recall']:.1f}"
        print(
            f"{key:<14} {conf:>6} {margin:>6} {100 * row['coverage']:>7.1f}% {100 * row['precision_kept']:>8.1f}%"
            f" {100 * row['accuracy']:>7.1f}%{extra}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--datasets", default="clinc150,banking77,trec")
    parser.add_argument("--targets", default="0.9,0.95")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    results = {}
    for name in args.datasets.split(","):
        results[name] = run(args.data / name, targets)
        show(name, results[name])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
