"""Rich progress bars for long steps (training, predicting a file). Disabled for `--json` output."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from labelwise.cli.output import err_console
from labelwise.engines.base import ProgressCallback


@contextmanager
def step_progress(*, enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A bar driven by an engine's (step, fraction) callback, with the time spent and an estimate of what is left
    (fine-tuning a transformer takes minutes)."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("training", total=1.0)

        def update(step: str, fraction: float) -> None:
            bar.update(task, description=step, completed=fraction)

        yield update


def count_rows(path: Path) -> int | None:
    """Rows in a file, cheaply: Parquet metadata, or newlines for text formats (an upper bound for CSV)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        with path.open("rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        return lines - 1 if suffix in {".csv", ".tsv"} else lines
    except OSError:
        return None


@contextmanager
def row_progress(path: Path, *, enabled: bool = True) -> Iterator[Callable[[int], None] | None]:
    """A bar advanced by the number of rows written."""
    if not enabled:
        yield None
        return
    with Progress(
        TextColumn("predicting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task("rows", total=count_rows(path), rate="")

        def advance(rows: int) -> None:
            bar.advance(task, rows)
            elapsed = bar.tasks[0].elapsed or 0.0
            if elapsed > 0:
                bar.update(task, rate=f"{bar.tasks[0].completed / elapsed:,.0f} rows/s")

        yield advance
