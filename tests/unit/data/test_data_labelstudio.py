"""Label Studio's JSON export as a training file: read (single and multi-label, cancelled and missing annotations,
bad tasks named by number) and written back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelwise.data import ReadOptions, read_labeled
from labelwise.data.labelstudio import annotation, labeling_config, write_export
from labelwise.domain import TaskType
from labelwise.errors import DataError


def task(text: str, *annotations: list[str], cancelled: bool = False, key: str = "text") -> dict[str, Any]:
    return {
        "id": 1,
        "data": {key: text},
        "annotations": [{"result": [annotation(c)], "was_cancelled": cancelled} for c in annotations],
        "predictions": [{"result": [annotation(["wrong"])]}],
    }


def test_an_export_trains_like_any_labeled_file(tmp_path: Path) -> None:
    tasks = [
        task("my card never came", ["card"]),
        task("card still missing", ["topup"], ["card"]),  # the latest annotation wins
        task("top up my account", ["topup"]),
        task("add money please", ["topup"]),
        task("not labeled yet"),  # no annotation: skipped
        task("cancelled one", ["card"], cancelled=True),  # cancelled: skipped
        task("other field name", ["card"], key="body"),  # the only string field is the text
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    labeled, _, task_type = read_labeled(path, ReadOptions())
    assert task_type is TaskType.SINGLE_LABEL
    assert dict(zip(labeled.texts, labeled.labels, strict=True)) == {
        "my card never came": ("card",),
        "card still missing": ("card",),
        "top up my account": ("topup",),
        "add money please": ("topup",),
        "other field name": ("card",),
    }


def test_several_choices_make_a_multi_label_file(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    write_export([("a and b", ["a", "b"]), ("just a", ["a"]), ("b then a", ["b", "a"]), ("only b", ["b"])], path)
    labeled, _, task_type = read_labeled(path, ReadOptions())
    assert task_type is TaskType.MULTI_LABEL
    assert sorted(labeled.labels[labeled.texts.index("a and b")]) == ["a", "b"]
    assert labeled.labels[labeled.texts.index("just a")] == ("a",)


def test_a_task_without_text_is_named_by_its_number(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps([task("fine", ["a"]), {"id": 9, "data": {"n": 1}, "annotations": []}]))
    with pytest.raises(DataError, match="task 2: the task's data has no text field"):
        read_labeled(path, ReadOptions(), min_examples=1)


def test_written_export_round_trips(tmp_path: Path) -> None:
    rows = [("first text", ["x"]), ("second text", ["y"]), ("third", ["x"]), ("fourth", ["y"])]
    path = tmp_path / "out.json"
    assert write_export(rows, path) == 4
    labeled, _, _ = read_labeled(path, ReadOptions())
    assert sorted(zip(labeled.texts, labeled.labels, strict=True)) == sorted((t, tuple(ls)) for t, ls in rows)


def test_labeling_config_quotes_labels() -> None:
    config = labeling_config(['say "hi"', "a&b"])
    assert "value='say \"hi\"'" in config
    assert 'value="a&amp;b"' in config
    assert 'toName="text"' in config
