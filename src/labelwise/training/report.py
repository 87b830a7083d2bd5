"""The training report: `report.json`, three PNG plots and one self-contained `report.html`.

Plots are drawn with `matplotlib.figure.Figure` and `FigureCanvasAgg` directly, never pyplot: pyplot keeps a
global figure registry and picks a GUI backend, which is neither thread-safe nor wanted on a server.
"""

from __future__ import annotations

import functools
import html
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.ft2font import FT2Font
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

logger = logging.getLogger(__name__)

__all__ = ["write_report"]

_DPI = 100
# Above this many labels a per-cell count is unreadable in any figure size a browser shows comfortably.
_CELL_TEXT_MAX_LABELS = 30
# Above this many labels a grid of small 2x2 matrices no longer fits on a page; a rate chart does.
_MULTI_LABEL_GRID_MAX = 16
_MAX_TICK_CHARS = 40
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
    images: dict[str, str] = {}
    drawers: tuple[tuple[str, Callable[[Mapping[str, Any], str], Figure | None]], ...] = (
        ("confusion_matrix.png", _confusion_figure),
        ("reliability.png", _reliability_figure),
        ("per_label_f1.png", _per_label_f1_figure),
    )
    for name, draw in drawers:
        fig = draw(metrics, split) if metrics else None
        if fig is None:
            logger.info("report plot skipped: no data", extra={"plot": name})
            continue
        path = directory / name
        _save(fig, path)
        images[name] = split
        written.append(path)

    html_path = directory / "report.html"
    html_path.write_text(_render_html(report, split, images), encoding="utf-8")
    written.append(html_path)
    return written


# ---------------------------------------------------------------------------------------------------- helpers


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float:
    """A float, or NaN for None and anything non-numeric: metrics can be undefined (no positives, one class)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _lookup(metrics: Mapping[str, Any], dotted: str) -> Any:
    value: Any = metrics
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def _plot_metrics(report: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    for split in ("test", "validation"):
        metrics = _mapping(report.get(split))
        if metrics:
            return split, metrics
    return "validation", {}


@functools.cache
def _drawable() -> frozenset[int]:
    """The code points the plot font has glyphs for (matplotlib's bundled DejaVu Sans unless configured)."""
    return frozenset(FT2Font(findfont(FontProperties())).get_charmap())


def _plot_label(name: Any) -> str:
    """A label as axis text: one line, shortened, only drawable characters, `$` escaped.

    Long names lose their middle, not their end: label families often share a prefix and differ at the end.
    Characters the font lacks (CJK, emoji with the default font) become U+FFFD: matplotlib would draw an empty
    box anyway and warn once per glyph; the HTML tables show the names in full. Escaping `$` keeps matplotlib
    from parsing user data as math (an unbalanced `$` would fail the whole plot).
    """
    drawable = _drawable()
    text = "".join(c if ord(c) in drawable else "\ufffd" for c in " ".join(str(name).split()))
    if len(text) > _MAX_TICK_CHARS:
        head = (_MAX_TICK_CHARS - 1) * 3 // 5
        text = text[:head] + "…" + text[head - _MAX_TICK_CHARS + 1 :]
    return text.replace("$", r"\$")


def _tick_fontsize(count: int) -> float:
    if count <= 10:
        return 10.0
    if count <= _CELL_TEXT_MAX_LABELS:
        return 8.0
    return 7.0 if count <= 80 else 6.0


def _label_axis(fig: Figure, ax: Axes, labels: Sequence[str], fontsize: float, *, axis: str) -> None:
    """Write `labels` next to rows (`axis="y"`) or under columns (`"x"`) at data positions 0, 1, 2 ...

    Plain text artists instead of tick labels: matplotlib builds a Tick object per label and measures every
    label several times per draw, which made up most of the time to render 151 labels; this looks the same.
    Axis titles would be placed over these texts, so callers name their axes in the figure title instead.
    """
    gap = 3 / 72  # inches between the axes edge and the text, as matplotlib pads tick labels
    if axis == "y":
        offset = ScaledTranslation(-gap, 0.0, fig.dpi_scale_trans)
        transform = blended_transform_factory(ax.transAxes, ax.transData) + offset
        for index, text in enumerate(labels):
            ax.text(0.0, index, text, transform=transform, ha="right", va="center", fontsize=fontsize)
        ax.set_yticks([])
    else:
        offset = ScaledTranslation(0.0, -gap, fig.dpi_scale_trans)
        transform = blended_transform_factory(ax.transData, ax.transAxes) + offset
        for index, text in enumerate(labels):
            ax.text(index, 0.0, text, transform=transform, ha="center", va="top", rotation=90, fontsize=fontsize)
        ax.set_xticks([])


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)  # attaches the Agg canvas to the figure; no backend switch, no global state
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", facecolor="white")


# ------------------------------------------------------------------------------------------------------ plots


def _confusion_figure(metrics: Mapping[str, Any], split: str) -> Figure | None:
    confusion = _mapping(metrics.get("confusion_matrix"))
    if confusion:
        labels = [str(label) for label in confusion.get("labels") or []]
        matrix = np.asarray(confusion.get("matrix") or [], dtype=float)
        if matrix.ndim == 2 and matrix.shape == (len(labels), len(labels)) and labels:
            return _single_label_confusion(labels, matrix, split)
        logger.warning("confusion matrix shape does not match its labels", extra={"labels": len(labels)})
        return None
    per_label = _mapping(metrics.get("per_label_confusion"))
    cells = {str(k): np.asarray(v, dtype=float) for k, v in per_label.items() if np.shape(v) == (2, 2)}
    if not cells:
        return None
    if len(cells) <= _MULTI_LABEL_GRID_MAX:
        return _multi_label_grid(cells, split)
    return _multi_label_rates(cells, split)


def _single_label_confusion(labels: list[str], matrix: np.ndarray, split: str) -> Figure:
    count = len(labels)
    cell = 0.5 if count <= 10 else 0.32 if count <= _CELL_TEXT_MAX_LABELS else 0.17
    side = max(5.0, count * cell + 2.0)
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    # Row-normalized colour shows recall per true label, so rare labels are as visible as frequent ones; the
    # square-root scale keeps a 2% confusion visible next to a 95% diagonal.
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    # A mesh of cells rather than imshow: imshow resamples the matrix to the canvas resolution on every draw,
    # which for 151 labels took twice as long as the mesh. Cell centres sit on whole numbers, as with imshow.
    edges = np.arange(count + 1) - 0.5
    mesh = ax.pcolormesh(edges, edges, shares, cmap="Blues", norm=norm)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(edges[-1], edges[0])  # first label at the top, like a table
    ax.set_aspect("equal")
    fontsize = _tick_fontsize(count)
    ticks = [_plot_label(label) for label in labels]
    _label_axis(fig, ax, ticks, fontsize, axis="x")
    _label_axis(fig, ax, ticks, fontsize, axis="y")
    ax.set_title(
        f"Confusion matrix ({split}, {int(matrix.sum()):,} examples)\nrows: true label, columns: predicted label"
    )
    if count <= _CELL_TEXT_MAX_LABELS:
        for (row, col), value in np.ndenumerate(matrix):
            if value:
                colour = "white" if norm(shares[row, col]) > 0.6 else "black"
                ax.text(col, row, f"{int(value)}", ha="center", va="center", fontsize=fontsize, color=colour)
    fig.colorbar(
        mesh,
        ax=ax,
        fraction=0.046 if count <= _CELL_TEXT_MAX_LABELS else 0.02,
        shrink=1.0 if count <= _CELL_TEXT_MAX_LABELS else 0.5,
        pad=0.02,
        label="share of the true label's examples (square-root scale)",
    )
    return fig


def _multi_label_grid(cells: Mapping[str, np.ndarray], split: str) -> Figure:
    columns = math.ceil(math.sqrt(len(cells)))
    rows = math.ceil(len(cells) / columns)
    fig = Figure(figsize=(2.6 * columns, 2.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    names = (("TN", "FP"), ("FN", "TP"))
    for ax, (label, cell) in zip(axes.flat, cells.items(), strict=False):
        totals = cell.sum(axis=1, keepdims=True)
        shares = np.divide(cell, totals, out=np.zeros_like(cell), where=totals > 0)
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for (row, col), value in np.ndenumerate(cell):
            colour = "white" if shares[row, col] > 0.5 else "black"
            text = f"{names[row][col]}\n{int(value):,}"
            ax.text(col, row, text, ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks([0, 1], ["no", "yes"], fontsize=7)
        ax.set_yticks([0, 1], ["no", "yes"], fontsize=7)
        ax.set_title(_plot_label(label), fontsize=9)
    for ax in list(axes.flat)[len(cells) :]:
        ax.set_axis_off()
    fig.supxlabel("predicted", fontsize=9)
    fig.supylabel("true", fontsize=9)
    fig.suptitle(f"Per-label confusion ({split})")
    return fig


def _multi_label_rates(cells: Mapping[str, np.ndarray], split: str) -> Figure:
    def rate(part: float, whole: float) -> float:
        return part / whole if whole else 0.0

    rows = [(label, rate(c[0, 1], c[0, 0] + c[0, 1]), rate(c[1, 0], c[1, 0] + c[1, 1])) for label, c in cells.items()]
    rows.sort(key=lambda row: row[1] + row[2])  # the worst labels end up at the top of the chart
    count = len(rows)
    fig = Figure(figsize=(8.0, max(3.0, 0.28 * count + 1.2)))
    ax = fig.add_subplot()
    positions = np.arange(count)
    ax.barh(positions + 0.2, [r[1] for r in rows], height=0.4, color="tab:orange", label="false-positive rate")
    ax.barh(positions - 0.2, [r[2] for r in rows], height=0.4, color="tab:blue", label="false-negative rate")
    _label_axis(fig, ax, [_plot_label(r[0]) for r in rows], _tick_fontsize(count), axis="y")
    ax.set_ylim(-0.6, count - 0.4)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("rate")
    ax.set_axisbelow(True)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(f"Per-label error rates ({split}), worst first")
    return fig


def _reliability_figure(metrics: Mapping[str, Any], split: str) -> Figure | None:
    bins = [_mapping(b) for b in _mapping(metrics.get("reliability")).get("bins") or []]
    bins = [b for b in bins if not math.isnan(_number(b.get("lo"))) and not math.isnan(_number(b.get("hi")))]
    if not bins:
        return None
    lo = np.array([_number(b["lo"]) for b in bins])
    width = np.array([_number(b["hi"]) for b in bins]) - lo
    counts = np.nan_to_num(np.array([_number(b.get("count")) for b in bins])).clip(min=0.0)
    accuracy = np.array([_number(b.get("accuracy")) for b in bins])
    confidence = np.array([_number(b.get("confidence")) for b in bins])
    filled = (counts > 0) & ~np.isnan(accuracy)  # empty bins carry null accuracy: draw nothing for them

    fig = Figure(figsize=(6.0, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.bar(
        lo[filled],
        accuracy[filled],
        width=width[filled],
        align="edge",
        color="tab:blue",
        edgecolor="white",
        alpha=0.85,
        label="accuracy",
    )
    shown = filled & ~np.isnan(confidence)
    top.plot(confidence[shown], accuracy[shown], "o", color="tab:red", markersize=4, label="mean confidence")
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left", fontsize=8)
    top.set_axisbelow(True)
    top.grid(alpha=0.3)
    ece = _number(metrics.get("ece"))
    ece_text = "n/a" if math.isnan(ece) else f"{ece:.3f}"
    top.set_title(f"Reliability ({split}), ECE {ece_text}")
    bottom.bar(lo, counts, width=width, align="edge", color="tab:grey", edgecolor="white")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("examples")
    return fig


def _per_label_f1_figure(metrics: Mapping[str, Any], split: str) -> Figure | None:
    per_label = _mapping(metrics.get("per_label"))
    if not per_label:
        return None
    rows = [(str(label), _number(_mapping(v).get("f1")), _mapping(v).get("support")) for label, v in per_label.items()]
    rows.sort(key=lambda row: -1.0 if math.isnan(row[1]) else row[1])  # ascending: barh puts the best on top
    count = len(rows)
    fig = Figure(figsize=(8.0, max(3.0, 0.2 * count + 1.2)))
    ax = fig.add_subplot()
    f1 = np.nan_to_num(np.array([row[1] for row in rows]))
    ax.barh(np.arange(count), f1, height=0.75, color="tab:blue")
    fontsize = _tick_fontsize(count)
    names = [f"{_plot_label(name)} (n={_support_text(support)})" for name, _, support in rows]
    _label_axis(fig, ax, names, fontsize, axis="y")
    ax.set_ylim(-0.6, count - 0.4)
    ax.set_xlim(0.0, 1.08 if count <= _CELL_TEXT_MAX_LABELS else 1.0)
    if count <= _CELL_TEXT_MAX_LABELS:
        for index, (_, value, _) in enumerate(rows):
            text = "n/a" if math.isnan(value) else f"{value:.2f}"
            ax.text(np.nan_to_num(value) + 0.01, index, text, va="center", fontsize=fontsize)
    macro = _number(_lookup(metrics, "macro.f1"))
    if not math.isnan(macro):
        ax.axvline(macro, color="tab:red", linestyle="--", linewidth=1, label=f"macro F1 {macro:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("F1")
    ax.set_axisbelow(True)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Per-label F1 ({split})")
    return fig


def _support_text(support: Any) -> str:
    value = _number(support)
    return "?" if math.isnan(value) else f"{int(value):,}"


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
        _data_section(_mapping(report.get("data"))),
        _metrics_section(report),
        _per_label_section(_mapping(report.get(split)), split),
        _calibration_section(_mapping(report.get("calibration"))),
        _plots_section(images),
        _params_section(_mapping(report.get("params"))),
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
    seconds = _number(report.get("training_seconds"))
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
    sizes = _mapping(data.get("sizes"))
    stats = _mapping(data.get("stats"))
    splits = [s for s in _SPLITS if s in sizes or s in stats] + [s for s in (*sizes, *stats) if s not in _SPLITS]
    splits = list(dict.fromkeys(splits))

    def value(split: str, key: str) -> Any:
        return sizes.get(split) if key == "size" else _mapping(stats.get(split)).get(key)

    fields = (
        ("rows", "size"),
        ("rows read", "rows_read"),
        ("rows kept", "rows_kept"),
        ("exact duplicates removed", "exact_duplicates"),
        ("normalized duplicates removed", "normalized_duplicates"),
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
    counts = {s: _mapping(_mapping(stats.get(s)).get("label_counts")) for s in splits}
    counts = {s: c for s, c in counts.items() if c}
    if not counts:
        return ""
    labels = list(
        dict.fromkeys([*(str(x) for x in data.get("labels") or []), *(k for c in counts.values() for k in c)])
    )
    rows = [(label, *(counts[s].get(label, 0) for s in counts)) for label in labels]
    table = _table(["label", *counts], rows)
    opened = " open" if len(labels) <= _CELL_TEXT_MAX_LABELS else ""
    return f"<details{opened}><summary>Label counts ({len(labels)} labels)</summary>{table}</details>"


def _metrics_section(report: Mapping[str, Any]) -> str:
    splits = [s for s in ("validation", "test") if _mapping(report.get(s))]
    if not splits:
        return "<h2>Metrics</h2><p>No evaluation metrics were recorded.</p>"
    metrics = {s: _mapping(report.get(s)) for s in splits}
    rows = [
        (title, *(_lookup(metrics[s], path) for s in splits))
        for title, path in _HEADLINE
        if any(_lookup(metrics[s], path) is not None for s in splits)
    ]
    note = "" if "test" in splits else '<p class="muted">No test split: validation metrics only.</p>'
    return "<h2>Metrics</h2>" + note + _table(["metric", *splits], rows)


def _per_label_section(metrics: Mapping[str, Any], split: str) -> str:
    per_label = _mapping(metrics.get("per_label"))
    if not per_label:
        return ""
    rows = [
        (label, *(_mapping(v).get(k) for k in ("precision", "recall", "f1", "support")))
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
