"""Reading tabular text files (CSV, TSV, JSON lines, Parquet) as a stream of records.

Files are never loaded whole: CSV and TSV go through the `csv` module line by line, JSON lines are parsed one
line at a time, and Parquet is read batch by batch with `ParquetFile.iter_batches`. Bytes that are not valid
UTF-8 are kept as lone surrogates (the `surrogateescape` error handler) so that the validator can name the row,
the column and the offending byte instead of failing on the whole file.

Row numbers are the ones a person would look for: for CSV and TSV the line the record starts on (the header is
line 1, as in a spreadsheet), for JSON lines the line number, for Parquet the 1-based record index.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import orjson

from labelwise.data.labelstudio import looks_like_export, read_export
from labelwise.data.problems import ProblemLog
from labelwise.errors import DataError

logger = logging.getLogger(__name__)

_BOM = b"\xef\xbb\xbf"
# Lone surrogates: U+DC80..U+DCFF stand for undecodable bytes (surrogateescape); any other one came from a
# broken JSON escape such as "\ud83d" without its pair. Neither can be encoded as UTF-8 later on.
_SURROGATE = re.compile("[\ud800-\udfff]")
PARQUET_BATCH_ROWS = 8192


class FileFormat(StrEnum):
    CSV = "csv"
    TSV = "tsv"
    JSONL = "jsonl"
    PARQUET = "parquet"


_EXTENSIONS: dict[str, FileFormat] = {
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.TSV,
    ".jsonl": FileFormat.JSONL,
    ".json": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
}


def detect_format(path: Path) -> FileFormat:
    """The file format implied by the extension of `path`, or a `DataError` naming the extension."""
    suffix = path.suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    known = ", ".join(sorted(_EXTENSIONS))
    if not suffix:
        raise DataError(f"{path.name}: the file has no extension; use one of {known}", param="path")
    raise DataError(f"{path.name}: unsupported file extension '{suffix}'; use one of {known}", param="path")


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with _open_binary(path) as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def bad_text_reason(value: str) -> str | None:
    """Why `value` cannot be encoded as UTF-8, or None: the first byte that was not valid UTF-8 in the file
    (or an unpaired surrogate from a JSON escape), with its 1-based character position in the value."""
    if value.isascii():
        return None
    match = _SURROGATE.search(value)
    if match is None:
        return None
    code = ord(match.group())
    position = match.start() + 1
    if 0xDC80 <= code <= 0xDCFF:
        return f"is not valid UTF-8 (byte 0x{code - 0xDC00:02x} at position {position})"
    return f"contains an unpaired surrogate U+{code:04X} at position {position}"


def describe_type(value: Any) -> str:
    """A short English name of a JSON-ish value's type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, bytes):
        return "bytes"
    return f"a {type(value).__name__}"


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a file: its row number, its values by column, or the reason it could not be parsed."""

    row: int
    values: dict[str, Any]
    error: str | None = None


def _open_binary(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found", param="path") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a directory, not a file", param="path") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})", param="path") from exc


class RecordStream:
    """A context manager over one file: `columns` (known before iterating) and an iterator of `Record`s.

    `wanted` limits the values kept per record to those columns (the others are still checked for count in
    CSV). `unit` is "line" for JSON lines and "row" otherwise, so messages read "train.jsonl line 7".
    """

    def __init__(self, path: Path, wanted: Sequence[str] | None = None) -> None:
        self.path = path
        self.name = path.name
        self.format = detect_format(path)
        self.unit = "line" if self.format is FileFormat.JSONL else "row"
        self._wanted = list(wanted) if wanted is not None else None
        self._fh: IO[bytes] | None = None
        self._closers: list[Any] = []
        self._columns: list[str] = []
        self._pending: deque[Record] = deque()
        self._records: Iterator[Record] = iter(())

    def __enter__(self) -> Self:
        self._fh = _open_binary(self.path)
        try:
            self._records = self._start(self._fh)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying file."""
        for closer in reversed(self._closers):
            closer.close()
        self._closers.clear()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def columns(self) -> list[str]:
        """Column names: the CSV header, the Parquet schema, or the keys of the first JSON object."""
        return list(self._columns)

    def where(self, row: int) -> str:
        """'row 17' or 'line 17', as messages name a record of this file."""
        return f"{self.unit} {row}"

    def with_wanted(self, wanted: Sequence[str]) -> None:
        """Narrow the values kept per record once the caller knows which columns it needs."""
        self._wanted = list(wanted)

    def __iter__(self) -> Iterator[Record]:
        while self._pending:
            yield self._pending.popleft()
        yield from self._records

    def _start(self, fh: IO[bytes]) -> Iterator[Record]:
        if self.format is FileFormat.PARQUET:
            return self._start_parquet()
        if self.format is FileFormat.JSONL:
            return self._start_jsonl(fh)
        return self._start_csv(fh)

    # CSV / TSV --------------------------------------------------------------------------------------------

    def _start_csv(self, fh: IO[bytes]) -> Iterator[Record]:
        # utf-8-sig drops a BOM; surrogateescape keeps bad bytes so the row can be named later.
        text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="surrogateescape", newline="")
        delimiter = "\t" if self.format is FileFormat.TSV else ","
        self._closers.append(text)
        reader = csv.reader(text, delimiter=delimiter)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise DataError(f"{self.name} row 1: cannot parse the header ({exc})") from exc
        if not header:
            raise DataError(f"{self.name}: the file is empty (no header row)")
        columns = [name.strip() for name in header]
        for name in columns:
            if (reason := bad_text_reason(name)) is not None:
                raise DataError(f"{self.name} row 1: the header {reason}")
        duplicated = sorted({name for name in columns if columns.count(name) > 1})
        if duplicated:
            raise DataError(f"{self.name} row 1: column names appear twice: {', '.join(duplicated)}")
        self._columns = columns
        return self._iter_csv(reader)

    def _iter_csv(self, reader: Any) -> Iterator[Record]:
        columns = self._columns
        n_columns = len(columns)
        previous_line = reader.line_num
        while True:
            try:
                fields = next(reader, None)
            except csv.Error as exc:
                raise DataError(f"{self.name} row {previous_line + 1}: cannot parse the line ({exc})") from exc
            if fields is None:
                return
            row, previous_line = previous_line + 1, reader.line_num
            if not fields:  # a blank line
                continue
            if len(fields) != n_columns:
                hint = " (is a delimiter inside an unquoted text?)" if len(fields) > n_columns else ""
                error = f"{len(fields)} fields, but the header has {n_columns}{hint}"
                yield Record(row, {}, error)
                continue
            values = dict(zip(columns, fields, strict=True))
            if self._wanted is not None:
                values = {key: values[key] for key in self._wanted if key in values}
            yield Record(row, values)

    # JSON lines -------------------------------------------------------------------------------------------

    def _start_jsonl(self, fh: IO[bytes]) -> Iterator[Record]:
        if self.path.suffix.lower() == ".json":
            with _open_binary(self.path) as head:
                if looks_like_export(head.read(4096)):
                    return self._start_label_studio()
        records = self._iter_jsonl(fh)
        # Columns come from the first object; records read while looking for it are replayed first.
        for record in records:
            self._pending.append(record)
            if record.error is None:
                self._columns = list(record.values)
                break
        if not self._pending:
            raise DataError(f"{self.name}: the file is empty (no JSON objects)")
        if self._pending[0].error is not None:
            self._check_not_array()
        if not self._columns:
            log = ProblemLog(self.name)
            for record in self._pending:
                log.add(self.where(record.row), record.error or "")
            log.raise_if_any()
        return records

    def _check_not_array(self) -> None:
        """A file whose first line fails and that opens with '[' is one JSON array, a common mistake."""
        with _open_binary(self.path) as fh:
            start = fh.read(64).lstrip(_BOM + b" \t\r\n")
        if start.startswith(b"["):
            raise DataError(f"{self.name}: the file is a JSON array; write JSON lines instead (one object per line)")

    def _iter_jsonl(self, fh: IO[bytes]) -> Iterator[Record]:
        for line_number, raw in enumerate(fh, start=1):
            line = raw[3:] if line_number == 1 and raw.startswith(_BOM) else raw
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj, error = _parse_json_slowly(line)
                if error is not None:
                    yield Record(line_number, {}, error)
                    continue
            if not isinstance(obj, dict):
                yield Record(line_number, {}, f"expected a JSON object, got {describe_type(obj)}")
                continue
            if self._wanted is not None:
                obj = {key: obj[key] for key in self._wanted if key in obj}
            yield Record(line_number, obj)

    def _start_label_studio(self) -> Iterator[Record]:
        """A Label Studio JSON export: one record per annotated task (`data/labelstudio.py`), row = task number."""
        rows, skipped = read_export(self.path)
        if skipped:
            logger.info("label studio tasks without a finished annotation skipped", extra={"tasks": skipped})
        multi = any(values is not None and "labels" in values for _, values, _ in rows)
        self._columns = ["text", "labels" if multi else "label"]
        self.unit = "task"

        def records() -> Iterator[Record]:
            for number, values, error in rows:
                if values is None:
                    yield Record(number, {}, error)
                    continue
                if multi and "label" in values:
                    values = {"text": values["text"], "labels": [values["label"]]}
                if self._wanted is not None:
                    values = {key: values[key] for key in self._wanted if key in values}
                yield Record(number, values)

        return records()

    # Parquet ----------------------------------------------------------------------------------------------

    def _start_parquet(self) -> Iterator[Record]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            # By path rather than through our handle: pyarrow's own reader is faster than a Python file.
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{self.name}: not a readable Parquet file ({exc})") from exc
        self._closers.append(parquet)
        self._columns = list(parquet.schema_arrow.names)
        return self._iter_parquet(parquet)

    def _iter_parquet(self, parquet: Any) -> Iterator[Record]:
        import pyarrow as pa

        wanted = self._wanted
        columns = [c for c in wanted if c in self._columns] if wanted is not None else None
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
                names = batch.schema.names
                data = [_column_values(batch.column(i)) for i in range(len(names))]
                for values in zip(*data, strict=True):
                    row += 1
                    yield Record(row, dict(zip(names, values, strict=True)))
        except pa.ArrowException as exc:
            raise DataError(f"{self.name} row {row + 1}: cannot read the Parquet data ({exc})") from exc


def _parse_json_slowly(line: bytes) -> tuple[Any, str | None]:
    """Parse a line orjson refused: keep bad bytes as surrogates, or say why it is not JSON."""
    text = line.decode("utf-8", errors="surrogateescape")
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"


def _column_values(column: Any) -> list[Any]:
    """A Parquet column as Python values; binary columns become text, keeping bad bytes for the validator."""
    import pyarrow as pa

    values: list[Any] = column.to_pylist()
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return [v.decode("utf-8", errors="surrogateescape") if isinstance(v, bytes) else v for v in values]
    return values
