"""Label Studio's JSON export as a training file, and the task shape Labelwise sends to Label Studio.

A Label Studio export (`Export -> JSON`) is one JSON array of tasks: `{"id", "data": {"text": ...},
"annotations": [{"result": [{"type": "choices", "value": {"choices": [...]}, ...}], "was_cancelled": ...}],
"predictions": [...]}`. Each task with a finished annotation becomes one row: its text, and its choices as `label`
(one choice) or `labels` (several, for a `choice="multiple"` labeling config). A task's latest annotation that was
not cancelled wins; tasks without one are skipped and counted. The text is `data["text"]`, or the task's only
string field when it has no `text`. The array is read whole (exports are what a person labeled, not data lakes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from labelwise.errors import DataError

# The labeling config Labelwise gives a project it creates: one text and one choice among the model's labels.
CHOICES_FROM = "label"
TEXT_TO = "text"


def looks_like_export(head: bytes) -> bool:
    """Whether the first bytes of a `.json` file open a Label Studio export: an array whose first task has data."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not start.startswith(b"["):
        return False
    after = start[1:].lstrip(b" \t\r\n")
    return after.startswith(b"{") and (b'"data"' in head or b'"annotations"' in head)


def text_of(data: Mapping[str, Any]) -> str | None:
    """The task's text: `data["text"]`, else its only string field; None when neither exists."""
    value = data.get(TEXT_TO)
    if isinstance(value, str):
        return value
    strings = [v for v in data.values() if isinstance(v, str)]
    return strings[0] if len(strings) == 1 else None


def choices_of(annotation: Mapping[str, Any]) -> list[str]:
    """The labels chosen in one annotation (every `choices` result of it, in order, without repeats)."""
    found: list[str] = []
    for result in annotation.get("result") or []:
        if not isinstance(result, Mapping) or result.get("type") != "choices":
            continue
        for choice in (result.get("value") or {}).get("choices") or []:
            if isinstance(choice, str) and choice not in found:
                found.append(choice)
    return found


def final_choices(task: Mapping[str, Any]) -> list[str] | None:
    """The choices of the task's latest annotation that was not cancelled; None when it has none."""
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, Mapping) and not a.get("was_cancelled")]
    for annotation in reversed(annotations):
        chosen = choices_of(annotation)
        if chosen:
            return chosen
    return None


def read_export(path: Path) -> tuple[list[tuple[int, dict[str, Any] | None, str | None]], int]:
    """The rows of an export: (task number from 1, {"text", "label" | "labels"} or None, error or None), and how
    many tasks had no finished annotation (skipped). `DataError` when the file is not an array of tasks."""
    try:
        tasks = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{path.name}: not valid JSON ({exc})") from exc
    if not isinstance(tasks, list):
        raise DataError(f"{path.name}: a Label Studio export is a JSON array of tasks")
    rows: list[tuple[int, dict[str, Any] | None, str | None]] = []
    skipped = 0
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            rows.append((number, None, "expected a Label Studio task with a data object"))
            continue
        text = text_of(task["data"])
        if text is None:
            rows.append((number, None, "the task's data has no text field (and not exactly one string field)"))
            continue
        chosen = final_choices(task)
        if chosen is None:
            skipped += 1
            continue
        rows.append((number, {"text": text, **_label_fields(chosen)}, None))
    return rows, skipped


def _label_fields(chosen: Sequence[str]) -> dict[str, Any]:
    return {"label": chosen[0]} if len(chosen) == 1 else {"labels": list(chosen)}


def annotation(labels: Sequence[str]) -> dict[str, Any]:
    """A Label Studio annotation (or prediction) result choosing `labels` in Labelwise's labeling config."""
    return {
        "from_name": CHOICES_FROM,
        "to_name": TEXT_TO,
        "type": "choices",
        "value": {"choices": list(labels)},
    }


def write_export(rows: Iterable[tuple[str, Sequence[str]]], path: Path) -> int:
    """Write (text, labels) rows as a Label Studio JSON export (one finished annotation per task); the count."""
    tasks = [
        {"id": i, "data": {TEXT_TO: text}, "annotations": [{"result": [annotation(labels)], "was_cancelled": False}]}
        for i, (text, labels) in enumerate(rows, start=1)
    ]
    path.write_bytes(orjson.dumps(tasks, option=orjson.OPT_INDENT_2))
    return len(tasks)


def labeling_config(labels: Sequence[str], *, multiple: bool = False) -> str:
    """The XML labeling config of a text classification project over `labels`."""
    from xml.sax.saxutils import quoteattr

    choice = ' choice="multiple"' if multiple else ""
    options = "".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    return (
        f'<View><Text name="{TEXT_TO}" value="${TEXT_TO}"/>'
        f'<Choices name="{CHOICES_FROM}" toName="{TEXT_TO}"{choice}>{options}</Choices></View>'
    )
