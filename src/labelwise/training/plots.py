"""The report's PNG plots: confusion matrix, reliability diagram and per-label F1.

Drawn with `matplotlib.figure.Figure` and `FigureCanvasAgg` directly, never pyplot: pyplot keeps a global figure
registry and picks a GUI backend, which is neither thread-safe nor wanted on a server. This module is imported only
when a report is written, so serving never loads matplotlib.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.ft2font import FT2Font
from matplotlib.transforms import ScaledTranslation, blended_transform_factory

from labelwise.training._report_values import CELL_TEXT_MAX_LABELS, lookup, mapping, number

logger = logging.getLogger(__name__)

_DPI = 100
# Above this many labels a grid of small 2x2 matrices no longer fits on a page; a rate chart does.
_MULTI_LABEL_GRID_MAX = 16
_MAX_TICK_CHARS = 40


def draw_plots(metrics: Mapping[str, Any], split: str, directory: Path) -> list[Path]:
    """Write `confusion_matrix.png`, `reliability.png` and `per_label_f1.png` from one split's metrics.

    A plot whose data is absent is not written; the paths written are returned.
    """
    drawers: tuple[tuple[str, Callable[[Mapping[str, Any], str], Figure | None]], ...] = (
        ("confusion_matrix.png", _confusion_figure),
        ("reliability.png", _reliability_figure),
        ("per_label_f1.png", _per_label_f1_figure),
    )
    written: list[Path] = []
    for name, draw in drawers:
        fig = draw(metrics, split)
        if fig is None:
            logger.info("report plot skipped: no data", extra={"plot": name})
            continue
        path = directory / name
        _save(fig, path)
        written.append(path)
    return written


def draw_abstain_plot(tuned: Mapping[str, Any], directory: Path) -> Path | None:
    """Write `abstain.png`: precision of the kept decisions against coverage on validation, the rule marked.

    Not written when the report has no curve (multi-label models, or no validation rows).
    """
    curve = [mapping(point) for point in tuned.get("curve") or []]
    if not curve:
        logger.info("report plot skipped: no data", extra={"plot": "abstain.png"})
        return None
    fig = Figure(figsize=(6.0, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(
        [number(p.get("coverage")) for p in curve],
        [number(p.get("precision")) for p in curve],
        color="tab:blue",
        label="keeping the most confident first",
    )
    target = number(tuned.get("target_precision"))
    if not math.isnan(target):
        ax.axhline(target, linestyle="--", color="grey", label=f"target precision {target:.2f}")
    coverage, precision = number(tuned.get("coverage")), number(tuned.get("precision"))
    if not math.isnan(coverage) and not math.isnan(precision):
        rule = f"rule: confidence >= {number(tuned.get('min_confidence')):.3f}, margin >= "
        rule += f"{number(tuned.get('min_margin')):.3f}"
        ax.plot([coverage], [precision], "o", color="tab:red", label=rule)
    ax.set_xlim(0.0, 1.02)
    ax.set_xlabel("coverage (share of texts decided)")
    ax.set_ylabel("precision of the decisions kept")
    ax.set_title("Abstaining: precision against coverage (validation)")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    path = directory / "abstain.png"
    _save(fig, path)
    return path


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
    if count <= CELL_TEXT_MAX_LABELS:
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
    confusion = mapping(metrics.get("confusion_matrix"))
    if confusion:
        labels = [str(label) for label in confusion.get("labels") or []]
        matrix = np.asarray(confusion.get("matrix") or [], dtype=float)
        if matrix.ndim == 2 and matrix.shape == (len(labels), len(labels)) and labels:
            return _single_label_confusion(labels, matrix, split)
        logger.warning("confusion matrix shape does not match its labels", extra={"labels": len(labels)})
        return None
    per_label = mapping(metrics.get("per_label_confusion"))
    cells = {str(k): np.asarray(v, dtype=float) for k, v in per_label.items() if np.shape(v) == (2, 2)}
    if not cells:
        return None
    if len(cells) <= _MULTI_LABEL_GRID_MAX:
        return _multi_label_grid(cells, split)
    return _multi_label_rates(cells, split)


def _single_label_confusion(labels: list[str], matrix: np.ndarray, split: str) -> Figure:
    count = len(labels)
    cell = 0.5 if count <= 10 else 0.32 if count <= CELL_TEXT_MAX_LABELS else 0.17
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
    if count <= CELL_TEXT_MAX_LABELS:
        for (row, col), value in np.ndenumerate(matrix):
            if value:
                colour = "white" if norm(shares[row, col]) > 0.6 else "black"
                ax.text(col, row, f"{int(value)}", ha="center", va="center", fontsize=fontsize, color=colour)
    fig.colorbar(
        mesh,
        ax=ax,
        fraction=0.046 if count <= CELL_TEXT_MAX_LABELS else 0.02,
        shrink=1.0 if count <= CELL_TEXT_MAX_LABELS else 0.5,
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
    bins = [mapping(b) for b in mapping(metrics.get("reliability")).get("bins") or []]
    bins = [b for b in bins if not math.isnan(number(b.get("lo"))) and not math.isnan(number(b.get("hi")))]
    if not bins:
        return None
    lo = np.array([number(b["lo"]) for b in bins])
    width = np.array([number(b["hi"]) for b in bins]) - lo
    counts = np.nan_to_num(np.array([number(b.get("count")) for b in bins])).clip(min=0.0)
    accuracy = np.array([number(b.get("accuracy")) for b in bins])
    confidence = np.array([number(b.get("confidence")) for b in bins])
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
    ece = number(metrics.get("ece"))
    ece_text = "n/a" if math.isnan(ece) else f"{ece:.3f}"
    top.set_title(f"Reliability ({split}), ECE {ece_text}")
    bottom.bar(lo, counts, width=width, align="edge", color="tab:grey", edgecolor="white")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("examples")
    return fig


def _per_label_f1_figure(metrics: Mapping[str, Any], split: str) -> Figure | None:
    per_label = mapping(metrics.get("per_label"))
    if not per_label:
        return None
    rows = [(str(label), number(mapping(v).get("f1")), mapping(v).get("support")) for label, v in per_label.items()]
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
    ax.set_xlim(0.0, 1.08 if count <= CELL_TEXT_MAX_LABELS else 1.0)
    if count <= CELL_TEXT_MAX_LABELS:
        for index, (_, value, _) in enumerate(rows):
            text = "n/a" if math.isnan(value) else f"{value:.2f}"
            ax.text(np.nan_to_num(value) + 0.01, index, text, va="center", fontsize=fontsize)
    macro = number(lookup(metrics, "macro.f1"))
    if not math.isnan(macro):
        ax.axvline(macro, color="tab:red", linestyle="--", linewidth=1, label=f"macro F1 {macro:.3f}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("F1")
    ax.set_axisbelow(True)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Per-label F1 ({split})")
    return fig


def _support_text(support: Any) -> str:
    value = number(support)
    return "?" if math.isnan(value) else f"{int(value):,}"
