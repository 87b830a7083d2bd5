"""Reading one labeled file into `LabeledTexts`: parsing labels, checking every row, removing duplicates.

Every problem names its row and is collected (see `ProblemLog`), so a user fixes a file in one pass. Rows whose
text is the same after normalization (NFKC, case folding, collapsed whitespace) and whose labels are the same
are duplicates: the first is kept, the others are counted as exact or normalized duplicates. The same
normalized text with different labels is a conflict: an error by default, or dropped with `conflicts="drop"`.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from labelwise.data.formats import RecordStream, bad_text_reason, describe_type, file_sha256
from labelwise.data.problems import ProblemLog
from labelwise.domain import LabeledTexts, TaskType
from labelwise.errors import DataError, InvalidRequest

logger = logging.getLogger(__name__)

_ABSENT = object()


@dataclass(frozen=True)
class ReadOptions:
    """How to read a labeled file.

    `label_col` None means "labels" when the file has that column, else "label". `label_sep` splits a label
    string into several labels ("billing|refund"). `multi_label` None means auto: multi-label when the label
    column holds lists (JSON lists, Parquet lists, or a CSV cell such as '["a", "b"]') or `label_sep` is set.
    `conflicts` says what to do with one text given different labels: "error" (the default) or "drop" every
    row of that text.
    """

    text_col: str = "text"
    label_col: str | None = None
    label_sep: str | None = None
    multi_label: bool | None = None
    conflicts: Literal["error", "drop"] = "error"

    def __post_init__(self) -> None:
        if not self.text_col:
            raise InvalidRequest("text_col: must not be empty", param="text_col")
        if self.label_col == "":
            raise InvalidRequest("label_col: must not be empty (leave it unset to choose automatically)")
        if self.label_sep == "":
            raise InvalidRequest("label_sep: must not be empty", param="label_sep")
        if self.conflicts not in ("error", "drop"):
            raise InvalidRequest(f"conflicts: must be 'error' or 'drop', not {self.conflicts!r}", param="conflicts")


@dataclass(frozen=True)
class DataStats:
    """What reading one file found. Without errors, every row read is counted once: `rows_read` equals
    `rows_kept + exact_duplicates + normalized_duplicates + conflicting_rows_dropped`."""

    path: str
    rows_read: int
    rows_kept: int
    exact_duplicates: int
    normalized_duplicates: int
    label_counts: dict[str, int]
    sha256: str
    format: str = ""
    conflicting_rows_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy."""
        return asdict(self)


def normalize_text(text: str) -> str:
    """The form under which two texts count as the same: NFKC, case folded, whitespace collapsed and stripped.

    NFKC runs again after case folding because folding can produce sequences that NFKC would compose.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


@dataclass
class FileData:
    """A file read by `read_file`: its rows, stats, task and the normalized text of each row kept."""

    texts: LabeledTexts
    stats: DataStats
    task: TaskType
    keys: list[str] = field(repr=False)


class _RowProblem(Exception):
    """Raised while checking one row; the message says what is wrong with it."""


def read_labeled(
    path: Path, options: ReadOptions = ReadOptions(), *, min_examples: int = 2
) -> tuple[LabeledTexts, DataStats, TaskType]:
    """Read, check and de-duplicate the labeled file at `path`; return its rows, what was found, and the task.

    Raises one `DataError` listing the first problems (row and problem) and their count: a missing column,
    empty or non-string text, undecodable bytes, a missing label, one text with conflicting labels, or a label
    with fewer than `min_examples` examples after duplicates are removed.
    """
    data = read_file(path, options, min_examples=min_examples)
    return data.texts, data.stats, data.task


def read_file(path: Path, options: ReadOptions = ReadOptions(), *, min_examples: int = 2) -> FileData:
    """`read_labeled`, also returning the normalized text of every row kept (for overlap checks)."""
    if min_examples < 1:
        raise InvalidRequest(f"min_examples: {min_examples}, must be at least 1", param="min_examples")
    with RecordStream(path) as stream:
        log = ProblemLog(stream.name)
        rows = _read_rows(stream, options, log)
    rows.finish()
    if rows.rows_read == 0:
        log.add(None, "no data rows")
    # A bad row can be what leaves its label short, so counts are judged only once every row is readable.
    if not log:
        _check_label_counts(rows, min_examples, log)
    log.raise_if_any()
    multi = options.multi_label
    if multi is None:
        multi = options.label_sep is not None or rows.saw_list
    stats = DataStats(
        path=str(path),
        rows_read=rows.rows_read,
        rows_kept=len(rows.texts),
        exact_duplicates=rows.exact,
        normalized_duplicates=rows.normalized,
        label_counts=dict(sorted(rows.label_counts().items())),
        sha256=file_sha256(path),
        format=stream.format.value,
        conflicting_rows_dropped=rows.conflicting_dropped,
    )
    logger.info(
        "read labeled file",
        extra={
            "file": stream.name,
            "rows_read": rows.rows_read,
            "rows_kept": stats.rows_kept,
            "labels": len(stats.label_counts),
        },
    )
    task = TaskType.MULTI_LABEL if multi else TaskType.SINGLE_LABEL
    return FileData(LabeledTexts(rows.texts, rows.labels), stats, task, rows.keys)


def _read_rows(stream: RecordStream, options: ReadOptions, log: ProblemLog) -> _Rows:
    """Check every record of `stream`, logging problems, and keep the good rows minus duplicates."""
    label_col = _choose_columns(stream, options)
    rows = _Rows(stream.unit, options, log)
    for record in stream:
        rows.rows_read += 1
        if record.error is not None:
            log.add(stream.where(record.row), record.error)
            continue
        try:
            text = _check_text(record.values.get(options.text_col, _ABSENT), options.text_col)
            labels, was_list = _parse_labels(record.values.get(label_col, _ABSENT), label_col, options)
        except _RowProblem as problem:
            log.add(stream.where(record.row), str(problem))
            continue
        rows.saw_list |= was_list
        rows.add(record.row, text, labels)
    return rows


def _choose_columns(stream: RecordStream, options: ReadOptions) -> str:
    """Check that the text and label columns exist (naming the ones that do) and return the label column."""
    noun = "field" if stream.unit == "line" else "column"
    available = ", ".join(stream.columns) or "(none)"
    if options.text_col not in stream.columns:
        raise DataError(
            f"{stream.name}: no {noun} '{options.text_col}'; the {noun}s are: {available}", param="text_col"
        )
    label_col = options.label_col
    if label_col is None:
        label_col = "labels" if "labels" in stream.columns else "label"
        if label_col not in stream.columns:
            raise DataError(
                f"{stream.name}: no label {noun}: expected 'label' or 'labels' (or set label_col); "
                f"the {noun}s are: {available}",
                param="label_col",
            )
    elif label_col not in stream.columns:
        raise DataError(f"{stream.name}: no {noun} '{label_col}'; the {noun}s are: {available}", param="label_col")
    stream.with_wanted([options.text_col, label_col])
    return label_col


def _check_text(value: Any, column: str) -> str:
    if value is _ABSENT:
        raise _RowProblem(f"no '{column}' field")
    if value is None:
        raise _RowProblem(f"{column} is missing")
    if not isinstance(value, str):
        raise _RowProblem(f"{column} is {describe_type(value)}, not a string")
    if (reason := bad_text_reason(value)) is not None:
        raise _RowProblem(f"{column} {reason}")
    if not value.strip():
        raise _RowProblem(f"{column} is empty" if not value else f"{column} is only whitespace")
    return value


def _parse_labels(value: Any, column: str, options: ReadOptions) -> tuple[tuple[str, ...], bool]:
    """The sorted, unique labels of one row, and whether the cell held a list."""
    if value is _ABSENT:
        raise _RowProblem(f"no '{column}' field")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise _RowProblem(f"{column} is missing")
    if isinstance(value, str) and value.lstrip().startswith("["):
        value = _parse_list_cell(value)
    was_list = isinstance(value, list | tuple)
    items = value if isinstance(value, list | tuple) else [value]
    labels: set[str] = set()
    for item in items:
        label = _label_text(item, column)
        parts = label.split(options.label_sep) if options.label_sep else [label]
        labels.update(part.strip() for part in parts if part.strip())
    if not labels:
        raise _RowProblem(f"{column} is empty")
    if options.multi_label is False and len(labels) > 1:
        shown = ", ".join(repr(label) for label in sorted(labels))
        raise _RowProblem(f"{column} has {len(labels)} labels ({shown}) but multi_label is off")
    return tuple(sorted(labels)), was_list


def _label_text(item: Any, column: str) -> str:
    if isinstance(item, str):
        if (reason := bad_text_reason(item)) is not None:
            raise _RowProblem(f"{column} {reason}")
        return item
    if isinstance(item, bool):
        return str(item)
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float) and math.isfinite(item):
        # 1.0 and 1 name the same class: Parquet and JSON writers often turn integer labels into floats.
        return str(int(item)) if item.is_integer() else str(item)
    if item is None:
        raise _RowProblem(f"{column} holds an empty entry")
    raise _RowProblem(f"{column} holds {describe_type(item)}, not a label")


def _parse_list_cell(cell: str) -> Any:
    """A CSV cell such as '["a", "b"]' (or Python's "['a', 'b']") as a list; anything else unchanged."""
    stripped = cell.strip()
    if not stripped.endswith("]"):
        return cell
    try:
        parsed = json.loads(stripped)
    except json.JSONDecodeError:
        try:
            # literal_eval only builds literals, never runs code; it accepts the repr pandas writes.
            parsed = ast.literal_eval(stripped)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return cell
    return parsed if isinstance(parsed, list) else cell


class _Rows:
    """The rows kept so far, with the duplicate and conflict bookkeeping."""

    def __init__(self, unit: str, options: ReadOptions, log: ProblemLog) -> None:
        self.unit = unit
        self.drop_conflicts = options.conflicts == "drop"
        self.log = log
        self.texts: list[str] = []
        self.labels: list[tuple[str, ...]] = []
        self.keys: list[str] = []
        self.rows: list[int] = []
        self.by_key: dict[str, int] = {}
        self.seen_raw: set[str] = set()
        self.conflicting: set[str] = set()
        self.exact = 0
        self.normalized = 0
        self.conflicting_dropped = 0
        self.rows_read = 0
        self.saw_list = False

    def add(self, row: int, text: str, labels: tuple[str, ...]) -> None:
        """Keep the row, count it as a duplicate, or report (or mark) a conflict."""
        key = normalize_text(text)
        index = self.by_key.get(key)
        if index is None:
            self.by_key[key] = len(self.texts)
            self.seen_raw.add(text)
            self.texts.append(text)
            self.labels.append(labels)
            self.keys.append(key)
            self.rows.append(row)
            return
        if key in self.conflicting:
            self.conflicting_dropped += 1
        elif labels == self.labels[index]:
            if text in self.seen_raw:
                self.exact += 1
            else:
                self.normalized += 1
                self.seen_raw.add(text)
        elif self.drop_conflicts:
            self.conflicting.add(key)
            self.conflicting_dropped += 2  # this row and the one kept before it
        else:
            same = "text" if text == self.texts[index] else "text (ignoring case, spacing and Unicode form)"
            self.log.add(
                f"{self.unit} {row}",
                f"same {same} as {self.unit} {self.rows[index]} but different labels "
                f"({_show(labels)} here, {_show(self.labels[index])} there)",
            )

    def finish(self) -> None:
        """Remove the rows whose text turned out to have conflicting labels (with conflicts="drop")."""
        if not self.conflicting:
            return
        keep = [i for i, key in enumerate(self.keys) if key not in self.conflicting]
        self.texts = [self.texts[i] for i in keep]
        self.labels = [self.labels[i] for i in keep]
        self.keys = [self.keys[i] for i in keep]
        self.rows = [self.rows[i] for i in keep]
        logger.warning("dropped rows with conflicting labels", extra={"rows": self.conflicting_dropped})

    def label_counts(self) -> Counter[str]:
        """How many kept rows carry each label."""
        counts: Counter[str] = Counter()
        for labels in self.labels:
            counts.update(labels)
        return counts


def _show(labels: tuple[str, ...]) -> str:
    return repr(labels[0]) if len(labels) == 1 else "[" + ", ".join(repr(label) for label in labels) + "]"


def _check_label_counts(rows: _Rows, min_examples: int, log: ProblemLog) -> None:
    """Report every label with fewer than `min_examples` rows, naming its first rows."""
    counts = rows.label_counts()
    rare = {label for label, count in counts.items() if count < min_examples}
    if not rare:
        return
    first_rows: dict[str, list[int]] = {label: [] for label in rare}
    for row, labels in zip(rows.rows, rows.labels, strict=True):
        for label in labels:
            if label in rare and len(first_rows[label]) < 3:
                first_rows[label].append(row)
    for label in sorted(rare):
        places = ", ".join(str(row) for row in first_rows[label])
        count = counts[label]
        example, unit = ("example", rows.unit) if count == 1 else ("examples", rows.unit + "s")
        log.add(None, f"label {label!r} has {count} {example} ({unit} {places}); at least {min_examples} are needed")
