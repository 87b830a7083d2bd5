"""Fit the zero-shot constants of labelwise.engines.zeroshot (template, temperature, confidence weights).

Fitted on labeled *training* rows of several public datasets (label names only, humanized), never on a test
split; the test splits are then used once to report accuracy and expected calibration error (ECE, 15 bins).

    .venv/bin/python bench/fit_zeroshot.py [--rows 1000] [--data ../shared/data] [--cache /tmp/labelwise-encoder]

Prints the constants to paste into zeroshot.py and a table of test accuracy, ECE (exclusive mode with the
fitted temperature and with T=1; confidence mode) and the confidence mode's micro-F1 at 0.5.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar

from labelwise.encoder import get_encoder
from labelwise.engines.calibration import expected_calibration_error
from labelwise.engines.zeroshot import confidence, fit_confidence_weights, label_text

SINGLE = ["sst2", "trec", "emotion", "banking77", "sms_spam", "clinc150"]
MULTI = ["goemotions"]
TEMPLATES = [
    "{label}",
    "This text is about {label}.",
    "This example is {label}.",
    "The topic of this text is {label}.",
    "It is about {label}.",
]

Array = NDArray[np.float64]


def read(data: Path, name: str, split: str, rows: int, seed: int) -> tuple[list[str], list[list[str]]]:
    path = data / name / f"{split}.jsonl"
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    random.Random(seed).shuffle(records)
    records = records[:rows]
    return [r["text"] for r in records], [r.get("labels") or [r["label"]] for r in records]


def label_set(data: Path, name: str) -> list[str]:
    labels: set[str] = set()
    for line in (data / name / "train.jsonl").open(encoding="utf-8"):
        record = json.loads(line)
        labels.update(record.get("labels") or [record["label"]])
    return sorted(labels)


class Dataset:
    def __init__(self, name: str, classes: list[str], vectors: NDArray[np.float32], gold: list[list[str]]) -> None:
        self.name, self.classes, self.vectors = name, classes, vectors
        index = {c: j for j, c in enumerate(classes)}
        self.targets = np.zeros((len(gold), len(classes)), dtype=bool)
        for i, labels in enumerate(gold):
            for label in labels:
                self.targets[i, index[label]] = True

    def cosine(self, encoder: Any, template: str) -> Array:
        labels = encoder.encode([label_text(c, None, template) for c in self.classes])
        out: Array = (self.vectors @ labels.T).astype(np.float64)
        return out


def softmax_nll(cosine: Array, targets: NDArray[np.bool_], temperature: float) -> float:
    z = cosine / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[targets].mean())


def fit_temperature(pairs: list[tuple[Array, NDArray[np.bool_]]]) -> float:
    # Each dataset weighs the same, whatever its size or label count.
    found = minimize_scalar(
        lambda log_t: sum(softmax_nll(c, t, math.exp(log_t)) for c, t in pairs) / len(pairs),
        bounds=(math.log(1e-3), math.log(1.0)),
        method="bounded",
    )
    return float(math.exp(found.x))


def load_all(encoder: Any, data: Path, split: str, rows: int, seed: int) -> list[Dataset]:
    out = []
    for name in SINGLE + MULTI:
        if not (data / name / f"{split}.jsonl").exists():
            continue
        texts, gold = read(data, name, split, rows, seed)
        out.append(Dataset(name, label_set(data, name), encoder.encode(texts), gold))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000, help="rows per dataset and split")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/labelwise-encoder"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    encoder = get_encoder(args.cache)

    train = load_all(encoder, args.data, "train", args.rows, args.seed)
    single = [d for d in train if d.name in SINGLE]
    print("template accuracy on train rows (single-label datasets):")
    best_template, best_mean = TEMPLATES[0], -1.0
    for template in TEMPLATES:
        accs = [
            float(d.targets[np.arange(len(d.targets)), d.cosine(encoder, template).argmax(1)].mean()) for d in single
        ]
        mean = float(np.mean(accs))
        print(
            f"  {template!r:42} mean {mean:.4f}  "
            + " ".join(f"{d.name}={a:.3f}" for d, a in zip(single, accs, strict=False))
        )
        if mean > best_mean:
            best_template, best_mean = template, mean
    cos_train = {d.name: d.cosine(encoder, best_template) for d in train}
    temperature = fit_temperature([(cos_train[d.name], d.targets) for d in single])
    weights = fit_confidence_weights([(cos_train[d.name], d.targets) for d in train], (1.0, 1.0, 1.0, -3.0))
    print(f'\nTEMPLATE = "{best_template}"\nTEMPERATURE = {temperature:.4f}')
    print(f"CONFIDENCE_WEIGHTS = ({', '.join(f'{w:.2f}' for w in weights)})\n")

    test = load_all(encoder, args.data, "test", args.rows, args.seed)
    print(
        f"{'test split':12} {'labels':>6} {'accuracy':>9} {'ECE excl':>9} {'ECE T=1':>8} {'ECE conf':>9} {'F1 conf':>8}"
    )
    for d in test:
        cosine = d.cosine(encoder, best_template)
        top = cosine.argmax(1)
        correct = d.targets[np.arange(len(top)), top]
        z = cosine / temperature
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        raw = np.exp(cosine - cosine.max(1, keepdims=True))
        raw /= raw.sum(1, keepdims=True)
        ece_excl = expected_calibration_error(p.max(1), correct)
        ece_raw = expected_calibration_error(raw.max(1), correct)
        independent = confidence(cosine, weights)
        ece_conf = expected_calibration_error(independent.ravel(), d.targets.ravel())
        decided = independent >= 0.5
        f1 = 2 * float((decided & d.targets).sum()) / max(float(decided.sum() + d.targets.sum()), 1.0)
        row = f"{d.name:12} {len(d.classes):6d} {correct.mean():9.4f} {ece_excl:9.4f} {ece_raw:8.4f}"
        print(f"{row} {ece_conf:9.4f} {f1:8.3f}")


if __name__ == "__main__":
    main()
