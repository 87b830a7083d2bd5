"""The training report renderer: files written, valid PNGs, JSON round trip, escaped HTML."""

from __future__ import annotations

import html
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from matplotlib import image as mpimg

from labelwise.training.report import write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"
PLOTS = ("confusion_matrix.png", "reliability.png", "per_label_f1.png")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def reliability(rng: np.random.Generator, n: int) -> dict[str, Any]:
    bins = []
    for i in range(10):
        lo, hi = i / 10, (i + 1) / 10
        count = 0 if i < 2 else int(rng.integers(1, n))  # the two lowest bins are empty, as in real reports
        confidence = None if count == 0 else (lo + hi) / 2
        accuracy = None if count == 0 else float(min(1.0, (lo + hi) / 2 + rng.normal(0, 0.05)))
        bins.append({"lo": lo, "hi": hi, "count": count, "confidence": confidence, "accuracy": accuracy})
    return {"bins": bins}


def per_label(rng: np.random.Generator, labels: list[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for label in labels:
        p, r = float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.3, 1.0))
        out[label] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r), "support": int(rng.integers(5, 90))}
    return out


def single_label_metrics(labels: list[str], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    k = len(labels)
    matrix = rng.integers(0, 3, size=(k, k)) + np.diag(rng.integers(20, 60, size=k))
    n = int(matrix.sum())
    return {
        "task": "single_label",
        "n": n,
        "accuracy": float(np.trace(matrix) / n),
        "macro": {"precision": 0.811, "recall": 0.802, "f1": 0.8123},
        "weighted": {"precision": 0.83, "recall": 0.82, "f1": 0.825},
        "per_label": per_label(rng, labels),
        "roc_auc": 0.95,
        "pr_auc": None,
        "ece": 0.0421,
        "reliability": reliability(rng, n),
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
    }


def multi_label_metrics(labels: list[str], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    confusion = {}
    for label in labels:
        tn, fp, fn, tp = (int(x) for x in rng.integers(1, 200, size=4))
        confusion[label] = [[tn, fp], [fn, tp]]
    return {
        "task": "multi_label",
        "n": 400,
        "micro": {"precision": 0.71, "recall": 0.66, "f1": 0.684},
        "macro": {"precision": 0.6, "recall": 0.55, "f1": 0.57},
        "weighted": {"precision": 0.7, "recall": 0.65, "f1": 0.67},
        "per_label": per_label(rng, labels),
        "hamming_loss": 0.0812,
        "subset_accuracy": 0.377,
        "roc_auc": 0.9,
        "pr_auc": 0.8,
        "ece": 0.03,
        "reliability": reliability(rng, 400),
        "per_label_confusion": confusion,
    }


def make_report(labels: list[str], task: str = "single_label", test: bool = True) -> dict[str, Any]:
    metrics = single_label_metrics if task == "single_label" else multi_label_metrics
    counts = {label: 10 + i for i, label in enumerate(labels)}
    stats = {
        "rows_read": 1000,
        "rows_kept": 960,
        "exact_duplicates": 30,
        "normalized_duplicates": 10,
        "label_counts": counts,
        "sha256": "ab" * 32,
    }
    return {
        "model": "tickets",
        "version": "3",
        "engine": "linear",
        "task": task,
        "created_at": "2024-05-01T12:00:00+00:00",
        "training_seconds": 12.345,
        "params": {"C": 4.0, "ngram_range": [1, 2], "class_weight": "balanced", "tol": 1e-05},
        "labels": labels,
        "data": {
            "task": task,
            "labels": labels,
            "sizes": {"train": 960, "validation": 120, "test": 120},
            "stats": {"train": stats, "validation": {**stats, "rows_read": 120}},
            "warnings": ["label 'rare' has only 3 examples"],
        },
        "calibration": {"method": "isotonic", "ece_validation": 0.0213, "ece_uncalibrated": 0.08},
        "validation": metrics(labels, seed=1),
        "test": metrics(labels, seed=2) if test else None,
    }


def assert_plots_valid(directory: Path) -> dict[str, tuple[int, int]]:
    sizes = {}
    for name in PLOTS:
        path = directory / name
        sizes[name] = png_size(path)
        pixels = mpimg.imread(path)  # a full decode, not just the header
        assert pixels.shape[:2] == (sizes[name][1], sizes[name][0])
        assert min(sizes[name]) > 200
    return sizes


def test_single_label_report_writes_every_file(tmp_path: Path) -> None:
    report = make_report(["billing", "outage", EVIL])

    written = write_report(report, tmp_path / "out")

    names = {path.name for path in written}
    assert names == {"report.json", "report.html", *PLOTS}
    assert all(path.parent == tmp_path / "out" and path.is_file() for path in written)
    assert_plots_valid(tmp_path / "out")


def test_report_json_round_trips_with_sorted_indented_keys(tmp_path: Path) -> None:
    report = make_report(["billing", "outage", "refund"])

    write_report(report, tmp_path)

    raw = (tmp_path / "report.json").read_bytes()
    assert orjson.loads(raw) == report
    assert raw.startswith(b'{\n  "calibration"')  # sorted keys, indented


def test_html_shows_metrics_and_escapes_label_names(tmp_path: Path) -> None:
    report = make_report(["billing", "outage", EVIL])
    report["model"] = 'tick"ets<b>'

    write_report(report, tmp_path)

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page
    assert "<b>" not in page
    assert html.escape(EVIL) in page
    assert "tick&quot;ets&lt;b&gt;" in page
    test_accuracy = report["test"]["accuracy"]
    assert f"{test_accuracy:.3f}" in page
    assert f"{report['validation']['accuracy']:.3f}" in page
    assert "0.812" in page  # macro F1
    assert "isotonic" in page
    assert "0.021" in page
    assert "linear" in page
    assert "2024-05-01T12:00:00+00:00" in page
    assert "12.3 s" in page
    assert "<td>0.00001</td>" in page  # hyperparameters keep their exact value
    for name in PLOTS:
        assert f'src="{name}"' in page
    assert "http://" not in page
    assert "https://" not in page


def test_many_labels_stay_legible_and_get_a_bigger_canvas(tmp_path: Path) -> None:
    labels = [f"label_{i:03d}_card_payment_wrong_exchange_rate" for i in range(77)]
    write_report(make_report(["a", "b", "c"]), tmp_path / "small")

    write_report(make_report(labels), tmp_path / "big")

    small = assert_plots_valid(tmp_path / "small")
    big = assert_plots_valid(tmp_path / "big")
    assert big["confusion_matrix.png"][0] > 2 * small["confusion_matrix.png"][0]
    assert big["per_label_f1.png"][1] > 2 * small["per_label_f1.png"][1]
    page = (tmp_path / "big" / "report.html").read_text(encoding="utf-8")
    assert page.count("card_payment_wrong_exchange_rate") >= 77


@pytest.mark.parametrize("count", [5, 40], ids=["grid", "rates"])
def test_multi_label_report_draws_per_label_confusion(tmp_path: Path, count: int) -> None:
    labels = [f"topic {i}" for i in range(count - 1)] + [EVIL]

    write_report(make_report(labels, task="multi_label"), tmp_path)

    assert_plots_valid(tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "hamming loss" in page
    assert "0.081" in page
    assert "subset accuracy" in page
    assert "0.377" in page
    assert "micro F1" in page
    assert html.escape(EVIL) in page
    assert "<script" not in page


def test_plots_fall_back_to_validation_without_test_metrics(tmp_path: Path) -> None:
    write_report(make_report(["a", "b", "c"], test=False), tmp_path)

    assert_plots_valid(tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Per-label metrics (validation)" in page
    assert "Confusion matrix (validation)" in page
    assert "No test split" in page


def test_minimal_report_writes_json_and_html_only(tmp_path: Path) -> None:
    written = write_report({"model": "bare", "version": "1"}, tmp_path)

    assert sorted(path.name for path in written) == ["report.html", "report.json"]
    assert "No evaluation metrics" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_partial_metrics_skip_only_the_missing_plots(tmp_path: Path) -> None:
    report = make_report(["a", "b", "c"])
    del report["test"]["reliability"]
    report["test"]["confusion_matrix"]["matrix"] = [[1, 2], [3, 4]]  # does not match three labels

    written = write_report(report, tmp_path)

    assert {path.name for path in written} == {"report.json", "report.html", "per_label_f1.png"}
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "reliability.png" not in page
    assert "confusion_matrix.png" not in page


def test_dollar_signs_in_labels_are_not_parsed_as_math(tmp_path: Path) -> None:
    labels = ["$5 refund", "over $10", r"\frac{a}{b} $x^", "plain"]

    write_report(make_report(labels), tmp_path)

    assert_plots_valid(tmp_path)


def test_labels_the_font_cannot_draw_render_without_warnings(tmp_path: Path) -> None:
    # Warnings are errors in this suite: matplotlib warns once per glyph missing from its font.
    labels = ["返金", "Überweisung", "café\nau lait", "🙂 smile"]

    write_report(make_report(labels), tmp_path)

    assert_plots_valid(tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "返金" in page
    assert "🙂 smile" in page


def test_rendering_does_not_import_pyplot(tmp_path: Path) -> None:
    # pyplot holds global state and may pick a GUI backend; a fresh interpreter shows whether we pulled it in.
    code = (
        "import sys, pathlib\n"
        "from labelwise.training.report import write_report\n"
        f"write_report({make_report(['a', 'b'])!r}, pathlib.Path({str(tmp_path)!r}))\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
