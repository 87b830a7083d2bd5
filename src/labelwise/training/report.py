"""The training report: `report.json`, three PNG plots (`plots.py`) and one self-contained `report.html`."""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from labelwise.training._report_values import CELL_TEXT_MAX_LABELS, lookup, mapping, number

logger = logging.getLogger(__name__)

__all__ = ["write_report"]

_SPLITS = ("train", "validation", "test")

# (row title, dotted path into METRICS); rows missing from both splits are left out of the table.
_HEADLINE: tuple[tuple[str, str], ...] = (
    ("examples", "n"),
    ("accuracy", "accuracy"),
    ("subset accuracy", "subset_accuracy"),
    ("hamming loss", "hamming_loss"),
    ("micro precision", "micro.precision"),
    ("micro recall", "micro.recall"),
    ("micro F1", "micro.f1"),
    ("macro precision", "macro.precision"),
    ("macro recall", "macro.recall"),
    ("macro F1", "macro.f1"),
    ("weighted precision", "weighted.precision"),
    ("weighted recall", "weighted.recall"),
    ("weighted F1", "weighted.f1"),
    ("ROC AUC", "roc_auc"),
    ("PR AUC", "pr_auc"),
    ("ECE", "ece"),
)


def write_report(report: dict[str, Any], directory: Path) -> list[Path]:
    """Write the training report for one model version into `directory` and return the written paths.

    Writes `report.json` (indented, sorted keys), the plots `confusion_matrix.png`, `reliability.png` and
    `per_label_f1.png` drawn from the test metrics (validation when there is no test split), and
    `report.html`, a static page that refers to the plots by relative file name. Optional parts missing from
    `report` are skipped: a plot whose data is absent is not written and the page leaves it out.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    json_path = directory / "report.json"
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    json_path.write_bytes(orjson.dumps(report, option=options, default=str))
    written.append(json_path)

    split, metrics = _plot_metrics(report)
    # matplotlib is imported only here: a serving process that never writes a report does not pay ~0.7 s for it.
    from labelwise.training.plots import draw_plots

    plots = draw_plots(metrics, split, directory) if metrics else []
    images = {path.name: split for path in plots}
    written.extend(plots)

    html_path = directory / "report.html"
    html_path.write_text(_render_html(report, split, images), encoding="utf-8")
    written.append(html_path)
    return written


# ---------------------------------------------------------------------------------------------------- helpers


def _plot_metrics(report: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    for split in ("test", "validation"):
        metrics = mapping(report.get(split))
        if metrics:
            return split, metrics
    return "validation", {}


# ------------------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
padding:0 1rem;color:#1f2328;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #d0d7de;padding:.25rem .6rem;
text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f6f8fa}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
img{max-width:100%;height:auto;border:1px solid #d0d7de}.muted{color:#656d76}
ul.warnings li{color:#9a6700}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    """One cell's text: integers with separators, floats with three decimals, `n/a` for undefined metrics."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.3f}"
    if value is None:
        return "n/a"
    return _e(_exact(value))


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="num">{_fmt(value)}</td>' if numeric else f"<td>{_fmt(value)}</td>"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A table whose header cells are escaped here and whose first column is a row title (escaped as text)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + f"<th>{_e(row[0])}</th>" + "".join(_cell(v) for v in row[1:]) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _render_html(report: Mapping[str, Any], split: str, images: Mapping[str, str]) -> str:
    title = f"{report.get('model', 'model')} {report.get('version', '')}".strip()
    sections = [
        _summary_section(report),
        _data_section(mapping(report.get("data"))),
        _metrics_section(report),
        _per_label_section(mapping(report.get(split)), split),
        _calibration_section(mapping(report.get("calibration"))),
        _plots_section(images),
        _params_section(mapping(report.get("params"))),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} — training report</title><style>{_CSS}</style></head>"
        f'<body><h1>{_e(title)}</h1><p class="muted">Training report</p>'
        + "".join(s for s in sections if s)
        + "</body></html>\n"
    )


def _summary_section(report: Mapping[str, Any]) -> str:
    seconds = number(report.get("training_seconds"))
    items = [
        ("model", report.get("model")),
        ("version", report.get("version")),
        ("engine", report.get("engine")),
        ("task", report.get("task")),
        ("created", report.get("created_at")),
        ("training time", None if math.isnan(seconds) else f"{seconds:,.1f} s"),
        ("labels", len(report.get("labels") or []) or None),
    ]
    entries = "".join(f"<dt>{_e(k)}</dt><dd>{_fmt(v)}</dd>" for k, v in items if v is not None)
    return f"<dl>{entries}</dl>"


def _data_section(data: Mapping[str, Any]) -> str:
    if not data:
        return ""
    sizes = mapping(data.get("sizes"))
    stats = mapping(data.get("stats"))
    splits = [s for s in _SPLITS if s in sizes or s in stats] + [s for s in (*sizes, *stats) if s not in _SPLITS]
    splits = list(dict.fromkeys(splits))

    def value(split: str, key: str) -> Any:
        return sizes.get(split) if key == "size" else mapping(stats.get(split)).get(key)

    fields = (
        ("rows", "size"),
        ("rows read", "rows_read"),
        ("rows kept", "rows_kept"),
        ("exact duplicates removed", "exact_duplicates"),
        ("normalized duplicates removed", "normalized_duplicates"),
        ("conflicting texts resolved by majority", "conflicts_resolved"),
        ("conflicting texts dropped", "conflicts_dropped"),
        ("rows left out for conflicting labels", "conflicting_rows_dropped"),
    )
    rows = [
        (title, *(value(s, key) for s in splits))
        for title, key in fields
        if any(value(s, key) is not None for s in splits)
    ]
    parts = ["<h2>Data</h2>", _table(["", *splits], rows) if splits and rows else ""]
    parts.append(_label_counts(data, stats, splits))
    warnings = data.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        parts.append(f'<h3>Warnings</h3><ul class="warnings">{items}</ul>')
    return "".join(parts)


def _label_counts(data: Mapping[str, Any], stats: Mapping[str, Any], splits: list[str]) -> str:
    counts = {s: mapping(mapping(stats.get(s)).get("label_counts")) for s in splits}
    counts = {s: c for s, c in counts.items() if c}
    if not counts:
        return ""
    labels = list(
        dict.fromkeys([*(str(x) for x in data.get("labels") or []), *(k for c in counts.values() for k in c)])
    )
    rows = [(label, *(counts[s].get(label, 0) for s in counts)) for label in labels]
    table = _table(["label", *counts], rows)
    opened = " open" if len(labels) <= CELL_TEXT_MAX_LABELS else ""
    return f"<details{opened}><summary>Label counts ({len(labels)} labels)</summary>{table}</details>"


def _metrics_section(report: Mapping[str, Any]) -> str:
    splits = [s for s in ("validation", "test") if mapping(report.get(s))]
    if not splits:
        return "<h2>Metrics</h2><p>No evaluation metrics were recorded.</p>"
    metrics = {s: mapping(report.get(s)) for s in splits}
    rows = [
        (title, *(lookup(metrics[s], path) for s in splits))
        for title, path in _HEADLINE
        if any(lookup(metrics[s], path) is not None for s in splits)
    ]
    note = "" if "test" in splits else '<p class="muted">No test split: validation metrics only.</p>'
    return "<h2>Metrics</h2>" + note + _table(["metric", *splits], rows)


def _per_label_section(metrics: Mapping[str, Any], split: str) -> str:
    per_label = mapping(metrics.get("per_label"))
    if not per_label:
        return ""
    rows = [
        (label, *(mapping(v).get(k) for k in ("precision", "recall", "f1", "support")))
        for label, v in per_label.items()
    ]
    table = _table(["label", "precision", "recall", "F1", "support"], rows)
    return f"<h2>Per-label metrics ({_e(split)})</h2>{table}"


def _calibration_section(calibration: Mapping[str, Any]) -> str:
    if not calibration:
        return ""
    first = ("method", "ece_validation")
    keys = [k for k in first if k in calibration] + sorted(k for k in calibration if k not in first)
    titles = {"method": "method chosen", "ece_validation": "ECE (validation)"}
    rows = [(titles.get(k, k.replace("_", " ")), calibration[k]) for k in keys]
    return "<h2>Calibration</h2>" + _table(["", "value"], rows)


def _plots_section(images: Mapping[str, str]) -> str:
    captions = {
        "confusion_matrix.png": "Confusion matrix",
        "reliability.png": "Reliability diagram",
        "per_label_f1.png": "Per-label F1",
    }
    figures = [
        f'<figure><a href="{_e(name)}"><img src="{_e(name)}" alt="{_e(captions[name])}" loading="lazy"></a>'
        f"<figcaption>{_e(captions[name])} ({_e(split)})</figcaption></figure>"
        for name, split in images.items()
    ]
    return "<h2>Plots</h2>" + "".join(figures) if figures else ""


def _params_section(params: Mapping[str, Any]) -> str:
    if not params:
        return ""
    # Exact values, not metric rounding: a learning rate of 1e-05 must not read 0.000.
    rows = [(key, _exact(params[key])) for key in sorted(params, key=str)]
    return "<h2>Hyperparameters</h2>" + _table(["parameter", "value"], rows)


def _exact(value: Any) -> str:
    """A value as written in JSON (strings as they are), for parameters and nested values."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()
