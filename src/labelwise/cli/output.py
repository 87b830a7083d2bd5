"""Printing for the CLI: JSON on stdout for `--json`, Rich tables otherwise, one-line errors on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path | set | frozenset):
        return str(value) if isinstance(value, Path) else sorted(value)
    raise TypeError(type(value).__name__)


def to_json(value: Any) -> str:
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def print_json(value: Any) -> None:
    """One JSON document on stdout (machine-readable output of `--json`)."""
    sys.stdout.write(to_json(value) + "\n")
    sys.stdout.flush()


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def fail(message: str, code: int = 1) -> None:
    """Print one line to stderr and exit with `code`."""
    # Escaped: a message may hold brackets ("pip install 'labelwise[ray]'") that Rich would read as markup.
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(code)
