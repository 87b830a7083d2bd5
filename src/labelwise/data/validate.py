"""Reading one labeled file into `LabeledTexts`: parsing labels, checking every row, removing duplicates.

Every problem names its row and is collected (see `ProblemLog`), so a user fixes a file in one pass. Rows whose
text is the same after normalization (NFKC, case folding, collapsed whitespace) and whose labels are the same
are duplicates: the first is kept, the others are counted as exact or normalized duplicates.

The same normalized text with different labels is a conflict. Labels are compared as a whole: in multi-label
data a conflict is the same text with a different label set ({a, b} and {a} conflict), and the majority is the
label set most rows give. By default (`conflicts="majority"`) the text keeps its most frequent labels and the
other rows are dropped; a text whose most frequent labels are tied (two rows, two answers) is dropped entirely.
`conflicts="drop"` drops every conflicting text; `conflicts="error"` reports each one as a problem.
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

ConflictRule = Literal["majority", "drop", "error"]
CONFLICT_RULES: tuple[ConflictRule, ...] = ("majority", "drop", "error")


@dataclass(frozen=True)
class ReadOptions:
    """How to read a labeled file.

    `label_col` None means "labels" when the file has that column, else "label". `label_sep` splits a label
    string into several labels ("billing|refund"). `multi_label` None means auto: multi-label when the label
    column holds lists (JSON lists, Parquet lists, or a CSV cell such as '["a", "b"]') or `label_sep` is set.
    `conflicts` says what to do with one text given different labels (different label sets, for multi-label):
    "majority" (the default) keeps its most frequent labels and drops it on an exact tie, "drop" drops every row
    of that text, "error" reports it as a problem.
    """

    text_col: str = "text"
    label_col: str | None = None
    label_sep: str | None = None
    multi_label: bool | None = None
    conflicts: ConflictRule = "majority"

    def __post_init__(self) -> None:
        if not self.text_col:
            raise InvalidRequest("text_col: must not be empty", param="text_col")
        if self.label_col == "":
            raise InvalidRequest("label_col: must not be empty (leave it unset to choose automatically)")
        if self.label_sep == "":
            raise InvalidRequest("label_sep: must not be empty", param="label_sep")
        if self.conflicts not in CONFLICT_RULES:
            raise InvalidRequest(
                f"conflicts: must be 'majority', 'drop' or 'error', not {self.conflicts!r}", param="conflicts"
            )


@dataclass(frozen=True)
class DataStats:
    """What reading one file found. Without errors, every row read is counted once: `rows_read` equals
    `rows_kept + exact_duplicates + normalized_duplicates + conflicting_rows_dropped`. `conflicts_resolved`
    counts the texts that kept their majority labels, `conflicts_dropped` those left out (tied, or rule "drop")."""

    path: str
    rows_read: int
    rows_kept: int
    exact_duplicates: int
    normalized_duplicates: int
    label_counts: dict[str, int]
    sha256: str
    format: str = ""
    conflicting_rows_dropped: int = 0
    conflicts_resolved: int = 0
    conflicts_dropped: int = 0

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
        conflicts_resolved=rows.conflicts_resolved,
        conflicts_dropped=rows.conflicts_dropped,
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
    """The rows read so far, grouped by normalized text; `finish` keeps one row per text and counts the rest."""

    def __init__(self, unit: str, options: ReadOptions, log: ProblemLog) -> None:
        self.unit = unit
        self.conflicts = options.conflicts
        self.log = log
        self.texts: list[str] = []
        self.labels: list[tuple[str, ...]] = []
        self.keys: list[str] = []
        self.rows: list[int] = []
        # Normalized text -> its rows as (row, text, labels), in file order; dicts keep first-appearance order.
        self.groups: dict[str, list[tuple[int, str, tuple[str, ...]]]] = {}
        self.exact = 0
        self.normalized = 0
        self.conflicting_dropped = 0
        self.conflicts_resolved = 0
        self.conflicts_dropped = 0
        self.rows_read = 0
        self.saw_list = False

    def add(self, row: int, text: str, labels: tuple[str, ...]) -> None:
        """Remember the row under its normalized text; duplicates and conflicts are settled by `finish`."""
        self.groups.setdefault(normalize_text(text), []).append((row, text, labels))

    def finish(self) -> None:
        """Keep one row per text: count duplicates, and report, resolve or drop texts with conflicting labels."""
        conflicted = 0
        for key, group in self.groups.items():
            variants = Counter(labels for _, _, labels in group)
            if len(variants) == 1:
                self._keep(key, group, group[0][2])
                continue
            conflicted += 1
            if self.conflicts == "error":
                self._report(group)
                continue
            ranked = variants.most_common(2)
            if self.conflicts == "majority" and ranked[0][1] > ranked[1][1]:
                self.conflicts_resolved += 1
                self.conflicting_dropped += len(group) - ranked[0][1]
                self._keep(key, group, ranked[0][0])
            else:  # "drop", or a tie for the most frequent labels
                self.conflicts_dropped += 1
                self.conflicting_dropped += len(group)
        if conflicted and self.conflicts == "error":
            self.log.hint = (
                f"{conflicted} {'text has' if conflicted == 1 else 'texts have'} conflicting labels and on_conflict "
                "(--on-conflict) is 'error'; 'majority' keeps each text's most frequent labels, 'drop' leaves "
                "such texts out"
            )
        if self.conflicting_dropped:  # counted in the stats, which the CLI, the API and the report show
            logger.info(
                "rows with conflicting labels",
                extra={
                    "resolved": self.conflicts_resolved,
                    "dropped": self.conflicts_dropped,
                    "rows": self.conflicting_dropped,
                },
            )

    def _keep(self, key: str, group: list[tuple[int, str, tuple[str, ...]]], labels: tuple[str, ...]) -> None:
        """Keep the first row of `group` with `labels`; its other rows with those labels are duplicates."""
        agreeing = [(row, text) for row, text, row_labels in group if row_labels == labels]
        row, text = agreeing[0]
        self.texts.append(text)
        self.labels.append(labels)
        self.keys.append(key)
        self.rows.append(row)
        seen = {text}
        for _, other in agreeing[1:]:
            if other in seen:
                self.exact += 1
            else:
                self.normalized += 1
                seen.add(other)

    def _report(self, group: list[tuple[int, str, tuple[str, ...]]]) -> None:
        """One problem per row whose labels differ from the first row of its text."""
        first_row, first_text, first_labels = group[0]
        for row, text, labels in group[1:]:
            if labels == first_labels:
                continue
            same = "text" if text == first_text else "text (ignoring case, spacing and Unicode form)"
            self.log.add(
                f"{self.unit} {row}",
                f"same {same} as {self.unit} {first_row} but different labels "
                f"({_show(labels)} here, {_show(first_labels)} there)",
            )

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
