"""`labelwise usage`: the usage ledger per key, day and route, as a table or JSON."""

from __future__ import annotations

from typing import Annotated

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import print_json, print_table
from labelwise.services.keys import split_key
from labelwise.services.usage import MAX_REPORT_DAYS, report_window
from labelwise.storage.repositories import UsageEntry


def usage(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Option("--key", help="One key's prefix (default: every key).")] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=MAX_REPORT_DAYS, help="Days up to today (UTC) to show.")
    ] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Show requests, texts, characters and credits per key, UTC day and route, with totals.

    Servers write usage to the database about once a second, so the last second may not show yet.
    """
    context: Container = ctx.obj
    start, end = report_window(None, None, days=days)
    report = context.usage.read(start, end, (split_key(key) or key) if key else None)
    totals = report.totals
    counters = ("requests", "texts", "characters", "credits")
    if as_json:
        rows = [{"key": r.key_prefix, "day": r.day.isoformat(), "route": r.route} | _counts(r) for r in report.rows]
        print_json({"from": start.isoformat(), "to": end.isoformat(), "data": rows, "total": _counts(totals)})
        return
    table_rows: list[tuple[object, ...]] = [
        (r.day.isoformat(), r.key_prefix, r.route, *(f"{getattr(r, c):,}" for c in counters)) for r in report.rows
    ]
    table_rows.append(("total", "", "", *(f"{getattr(totals, c):,}" for c in counters)))
    title = f"usage {start.isoformat()} to {end.isoformat()}" + (f", key {key}" if key else "")
    print_table(title, ["day", "key", "route", *counters], table_rows)


def _counts(entry: UsageEntry) -> dict[str, int]:
    return {"requests": entry.requests, "texts": entry.texts, "characters": entry.characters, "credits": entry.credits}
