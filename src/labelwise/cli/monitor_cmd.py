"""`labelwise drift NAME` and `labelwise models promote NAME VERSION`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import console, print_json, print_table
from labelwise.errors import InvalidRequest, NotFound
from labelwise.monitoring.drift import DriftReport, parse_window

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def drift(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name (its production version is measured).")],
    window: Annotated[str, typer.Option("--window", help="How far back: 30m, 24h, 7d ...")] = "24h",
    as_json: JsonOpt = False,
) -> None:
    """Drift of a model's predictions over a window: PSI of predicted labels and confidence vs validation."""
    context: Container = ctx.obj
    report: DriftReport = asyncio.run(context.stored_drift.drift(name, parse_window(window)))
    if as_json:
        print_json(report.to_dict() | {"since": report.since.isoformat()})
        return
    rows: list[tuple[str, Any]] = [
        ("predictions", report.predictions),
        ("psi", report.psi),
        ("status", report.status),
        ("mean confidence", _pair(report.mean_confidence, report.baseline_mean_confidence)),
        ("low-confidence share", _pair(report.low_confidence_share, report.baseline_low_confidence_share)),
    ]
    print_table(f"{report.model} {report.version}, last {window} (live / validation)", ["figure", "value"], rows)


def _pair(live: float | None, base: float | None) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return f"{fmt(live)} / {fmt(base)}"


def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to serve as production.")],
    as_json: JsonOpt = False,
) -> None:
    """Move `production` to VERSION (servers follow within their poll interval, no restart), after showing how
    it compared with the version in production when it was trained."""
    context: Container = ctx.obj
    try:
        comparison = context.reports.report(name, version).get("comparison")
    except NotFound:
        comparison = None
    record = context.aliases.set(name, "production", version, actor="cli")
    result = {"name": name, "production": record.version, "comparison": comparison}
    if as_json:
        print_json(result)
        return
    if comparison:
        rows = [
            (split, _headline(comparison["production"][split]), _headline(comparison["candidate"][split]))
            for split in ("held_out", "feedback")
        ]
        print_table(
            f"{name}: {comparison['production']['version']} (production then) vs {version}",
            ["data", "production", "candidate"],
            rows,
        )
    console.print(f"{name}@production -> {record.version}", highlight=False)


def _headline(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in metrics.items())


def feedback_rows(context: Container, name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The stored corrections of `name` whose text is known, as training rows."""
    return tuple(context.feedback.training_rows(name))


def original_data(context: Container, name: str) -> Path:
    """The training file of `name`'s production version, from its data summary."""
    record = context.store.resolve(f"{name}@production")
    path = record.data.get("stats", {}).get("train", {}).get("path")
    if not isinstance(path, str) or not Path(path).is_file():
        raise InvalidRequest(
            f"data: the training file of {record.ref} is not known or no longer exists; pass DATA", param="data"
        )
    return Path(path)
