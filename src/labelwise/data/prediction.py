"""Streaming files of texts to classify, and streaming the predictions back out.

Neither side holds a whole file: rows are read and checked one batch at a time, and written one batch at a time
(Parquet through `ParquetWriter`). The output goes to a hidden temporary file next to the target and is renamed
into place only when the writer closes without an error, so a failed job never leaves a truncated file behind
under the name the user asked for.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import orjson

from labelwise.data.formats import FileFormat, RecordStream, bad_text_reason, describe_type, detect_format
from labelwise.data.problems import ProblemLog
from labelwise.errors import DataError, InvalidRequest

logger = logging.getLogger(__name__)


def iter_text_batches(path: Path, text_col: str = "text", batch_rows: int = 5000) -> Iterator[list[dict[str, Any]]]:
    """Yield the rows of `path` as dicts (every column kept), `batch_rows` at a time, for prediction.

    Each row's text column is checked (present, a string, valid UTF-8, not empty) and every other text value
    must be valid UTF-8 so the rows can be written back out; a batch with problems raises one `DataError`
    naming its rows, before any of that batch is yielded.
    """
    if batch_rows < 1:
        raise InvalidRequest(f"batch_rows: {batch_rows}, must be at least 1", param="batch_rows")
    with RecordStream(path) as stream:
        if text_col not in stream.columns:
            noun = "field" if stream.unit == "line" else "column"
            available = ", ".join(stream.columns) or "(none)"
            raise DataError(f"{stream.name}: no {noun} '{text_col}'; the {noun}s are: {available}", param="text_col")
        log = ProblemLog(stream.name)
        batch: list[dict[str, Any]] = []
        for record in stream:
            problem = record.error or _row_problem(record.values, text_col)
            if problem is not None:
                log.add(stream.where(record.row), problem)
            batch.append(record.values)
            if len(batch) >= batch_rows:
                log.raise_if_any()
                yield batch
                batch = []
        log.raise_if_any()
        if batch:
            yield batch


def _row_problem(values: dict[str, Any], text_col: str) -> str | None:
    text = values.get(text_col)
    if text_col not in values:
        return f"no '{text_col}' field"
    if text is None:
        return f"{text_col} is missing"
    if not isinstance(text, str):
        return f"{text_col} is {describe_type(text)}, not a string"
    if not text.strip():
        return f"{text_col} is empty" if not text else f"{text_col} is only whitespace"
    for column, value in values.items():
        if isinstance(value, str) and (reason := bad_text_reason(value)) is not None:
            return f"{column} {reason}"
    return None


class PredictionWriter:
    """Streams row dicts to CSV, TSV, JSON lines or Parquet, chosen by the extension of `path`.

    `columns` fixes the output columns and their order; when None they are taken from the first row. Missing
    values are written empty (null). In CSV and TSV, lists and objects are written as JSON, which the readers
    here turn back into lists. Use as a context manager: the file appears at `path` only on a clean exit.
    """

    def __init__(self, path: Path, columns: Sequence[str] | None = None, *, batch_rows: int = 5000) -> None:
        self.path = path
        self.format = detect_format(path)
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.batch_rows = batch_rows
        self.rows_written = 0
        self._tmp = path.with_name(f".{path.name}.partial")
        self._buffer: list[Mapping[str, Any]] = []
        self._fh: IO[Any] | None = None
        self._csv: Any = None
        self._parquet: Any = None
        self._schema: Any = None
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(discard=exc_type is not None)

    def write(self, row: Mapping[str, Any]) -> None:
        """Add one row; it reaches the file when the current batch fills up or the writer closes."""
        if self._closed:
            raise ValueError("write to a closed PredictionWriter")
        if self.columns is None:
            self.columns = list(row)
        extra = [key for key in row if key not in self.columns]
        if extra:
            raise ValueError(f"row has columns that are not in the output: {extra}")
        self._buffer.append(row)
        if len(self._buffer) >= self.batch_rows:
            self._flush()

    def write_many(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add every row of `rows`."""
        for row in rows:
            self.write(row)

    def close(self, *, discard: bool = False) -> None:
        """Write what is buffered and move the file into place, or with `discard` remove what was written."""
        if self._closed:
            return
        self._closed = True
        try:
            if not discard:
                self._flush(final=True)
        finally:
            self._close_handles()
        if discard:
            self._tmp.unlink(missing_ok=True)
            return
        if self._tmp.exists():
            os.replace(self._tmp, self.path)
            logger.info("wrote predictions", extra={"file": self.path.name, "rows": self.rows_written})

    def _close_handles(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _flush(self, *, final: bool = False) -> None:
        rows, self._buffer = self._buffer, []
        if not rows and not final:
            return
        columns = self.columns or []
        if self.format is FileFormat.PARQUET:
            self._flush_parquet(rows, columns)
        elif self.format is FileFormat.JSONL:
            self._flush_jsonl(rows, columns)
        else:
            self._flush_csv(rows, columns)
        self.rows_written += len(rows)

    def _flush_csv(self, rows: list[Mapping[str, Any]], columns: list[str]) -> None:
        if not columns:  # nothing was written and no columns were named: leave the file empty
            self._tmp.touch()
            return
        if self._fh is None:
            self._fh = self._tmp.open("w", encoding="utf-8", newline="")
            delimiter = "\t" if self.format is FileFormat.TSV else ","
            self._csv = csv.writer(self._fh, delimiter=delimiter)
            self._csv.writerow(columns)
        self._csv.writerows([_cell(row.get(column)) for column in columns] for row in rows)

    def _flush_jsonl(self, rows: list[Mapping[str, Any]], columns: list[str]) -> None:
        if self._fh is None:
            self._fh = self._tmp.open("wb")
        out = io.BytesIO()
        for row in rows:
            out.write(orjson.dumps({c: row.get(c) for c in columns}, option=orjson.OPT_SERIALIZE_NUMPY))
            out.write(b"\n")
        self._fh.write(out.getvalue())

    def _flush_parquet(self, rows: list[Mapping[str, Any]], columns: list[str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {column: [row.get(column) for row in rows] for column in columns}
        first = self._schema is None
        try:
            if self._schema is None:
                self._schema = _schema_of(data)
            table = pa.Table.from_pydict(data, schema=self._schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            where = "has values of more than one type" if first else f"changed type after row {self.rows_written}"
            raise DataError(f"{self.path.name}: a column {where} ({exc}); Parquet needs one type per column") from exc
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._tmp, self._schema)
        self._parquet.write_table(table)


def _cell(value: Any) -> Any:
    """A value as a CSV cell: None empty, lists and objects as JSON, the rest as they are."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return value


def _schema_of(data: dict[str, list[Any]]) -> Any:
    """The Parquet schema of the first batch; a column with no values yet is taken to be text."""
    import pyarrow as pa

    def settle(kind: Any) -> Any:
        if pa.types.is_null(kind):
            return pa.string()
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            return pa.list_(settle(kind.value_type))
        return kind

    return pa.schema([pa.field(column, settle(pa.array(values).type)) for column, values in data.items()])
