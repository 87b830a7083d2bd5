"""Checking labeled files: every bad-data case names its row and problem; labels; duplicates and conflicts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from labelwise.data import ReadOptions, read_labeled
from labelwise.domain import TaskType
from labelwise.errors import DataError, InvalidRequest


def jsonl(tmp_path: Path, rows: list[dict[str, Any]], name: str = "train.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def csv_file(tmp_path: Path, body: str, name: str = "train.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def error_of(path: Path, options: ReadOptions = ReadOptions(), min_examples: int = 2) -> str:
    with pytest.raises(DataError) as info:
        read_labeled(path, options, min_examples=min_examples)
    return str(info.value)


GOOD = [{"text": "alpha", "label": "a"}, {"text": "beta", "label": "a"}]


def test_missing_text_column_names_the_columns(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "body,label\nhello,a\n")
    assert error_of(path) == "train.csv: no column 'text'; the columns are: body, label"


def test_missing_label_column_names_the_columns(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "text,category\nhello,a\n")
    message = error_of(path)
    assert "no label column: expected 'label' or 'labels'" in message
    assert "the columns are: text, category" in message
    assert error_of(path, ReadOptions(label_col="intent")) == (
        "train.csv: no column 'intent'; the columns are: text, category"
    )


def test_custom_columns_are_used(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "body,category\nhello,a\nworld,a\n")
    texts, _, _ = read_labeled(path, ReadOptions(text_col="body", label_col="category"))
    assert texts.texts == ["hello", "world"]


def test_labels_column_wins_over_label(tmp_path: Path) -> None:
    path = jsonl(tmp_path, [{"text": f"t{i}", "label": "x", "labels": ["y"]} for i in range(2)])
    texts, _, task = read_labeled(path)
    assert texts.labels == [("y",), ("y",)]
    assert task is TaskType.MULTI_LABEL


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"text": "", "label": "a"}, "text is empty"),
        ({"text": " \t\n", "label": "a"}, "text is only whitespace"),
        ({"text": None, "label": "a"}, "text is missing"),
        ({"text": 42, "label": "a"}, "text is a number, not a string"),
        ({"text": ["x"], "label": "a"}, "text is a list, not a string"),
        ({"label": "a"}, "no 'text' field"),
        ({"text": "gamma", "label": None}, "label is missing"),
        ({"text": "gamma"}, "no 'label' field"),
        ({"text": "gamma", "label": "  "}, "label is empty"),
        ({"text": "gamma", "label": []}, "label is empty"),
        ({"text": "gamma", "label": {"k": 1}}, "label holds an object, not a label"),
    ],
)
def test_bad_rows_name_the_line_and_problem(tmp_path: Path, row: dict[str, Any], problem: str) -> None:
    path = jsonl(tmp_path, [*GOOD, row])
    assert error_of(path) == f"train.jsonl line 3: {problem}"


def test_empty_label_cell_in_csv(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "text,label\nhello,a\nworld,\nagain,a\n")
    assert error_of(path) == "train.csv row 3: label is empty"


def test_rare_label_names_label_count_and_rows(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "text,label\none,a\ntwo,a\nthree,b\nfour,c\nfive,c\n")
    assert error_of(path) == "train.csv: label 'b' has 1 example (row 4); at least 2 are needed"
    message = error_of(path, min_examples=3)
    assert "label 'a' has 2 examples (rows 2, 3); at least 3 are needed" in message
    assert "label 'c' has 2 examples (rows 5, 6)" in message
    texts, _, _ = read_labeled(path, min_examples=1)
    assert len(texts) == 5


def test_duplicates_do_not_count_as_examples(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "text,label\none,a\ntwo,a\nsame,b\nsame,b\n")
    assert "label 'b' has 1 example (row 4)" in error_of(path)


STRICT = ReadOptions(conflicts="error")
HINT = (
    "1 text has conflicting labels and on_conflict (--on-conflict) is 'error'; 'majority' keeps each text's most "
    "frequent labels, 'drop' leaves such texts out"
)


def test_conflicting_labels_name_both_rows_and_the_option(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "text,label\nRefund please,billing\nother,billing\nx,refund\nrefund   PLEASE,refund\n")
    assert error_of(path, STRICT) == (
        "train.csv row 5: same text (ignoring case, spacing and Unicode form) as row 2 but different labels "
        f"('refund' here, 'billing' there); {HINT}"
    )
    path = jsonl(tmp_path, [*GOOD, {"text": "alpha", "label": "b"}, {"text": "z", "label": "b"}])
    assert error_of(path, STRICT) == (
        f"train.jsonl line 3: same text as line 1 but different labels ('b' here, 'a' there); {HINT}"
    )


def test_conflicts_are_resolved_by_majority_by_default(tmp_path: Path) -> None:
    rows = [
        {"text": "alpha", "label": "b"},
        {"text": "ALPHA", "label": "a"},
        {"text": "alpha", "label": "a"},
        {"text": "alpha ", "label": "a"},
        {"text": "tie", "label": "a"},
        {"text": "Tie", "label": "b"},
        {"text": "beta", "label": "a"},
        {"text": "x", "label": "b"},
    ]
    texts, stats, _ = read_labeled(jsonl(tmp_path, rows), min_examples=1)
    # "alpha" keeps its majority label from its first row that has it; "tie" (one vote each) is dropped.
    assert list(zip(texts.texts, texts.labels, strict=True)) == [("ALPHA", ("a",)), ("beta", ("a",)), ("x", ("b",))]
    assert (stats.conflicts_resolved, stats.conflicts_dropped) == (1, 1)
    assert stats.conflicting_rows_dropped == 3  # alpha's "b" and both rows of "tie"
    assert (stats.exact_duplicates, stats.normalized_duplicates) == (0, 2)
    assert stats.rows_read == (
        stats.rows_kept + stats.exact_duplicates + stats.normalized_duplicates + stats.conflicting_rows_dropped
    )


def test_a_multi_label_conflict_is_a_different_label_set(tmp_path: Path) -> None:
    rows = [
        {"text": "one", "labels": ["a", "b"]},
        {"text": "one", "labels": ["b", "a"]},  # the same set in another order: a duplicate, not a conflict
        {"text": "one", "labels": ["a"]},
        {"text": "two", "labels": ["a"]},
        {"text": "two", "labels": ["a", "b"]},
        {"text": "three", "labels": ["b"]},
    ]
    texts, stats, task = read_labeled(jsonl(tmp_path, rows), min_examples=1)
    assert task is TaskType.MULTI_LABEL
    assert list(zip(texts.texts, texts.labels, strict=True)) == [("one", ("a", "b")), ("three", ("b",))]
    assert (stats.conflicts_resolved, stats.conflicts_dropped, stats.exact_duplicates) == (1, 1, 1)
    assert "line 3: same text as line 1 but different labels ('a' here, ['a', 'b'] there)" in error_of(
        jsonl(tmp_path, rows), STRICT, min_examples=1
    )


def test_conflicts_can_be_dropped(tmp_path: Path) -> None:
    rows = [*GOOD, {"text": "ALPHA", "label": "b"}, {"text": "x", "label": "b"}, {"text": "y", "label": "b"}]
    rows.append({"text": "alpha", "label": "a"})
    path = jsonl(tmp_path, rows)
    texts, stats, _ = read_labeled(path, ReadOptions(conflicts="drop"), min_examples=1)
    assert texts.texts == ["beta", "x", "y"]
    assert stats.conflicting_rows_dropped == 3
    assert (stats.conflicts_resolved, stats.conflicts_dropped) == (0, 1)  # "drop" drops even a clear majority
    assert stats.rows_read == stats.rows_kept + stats.conflicting_rows_dropped


def test_many_problems_are_reported_together_first_lines_first(tmp_path: Path) -> None:
    rows = [{"text": "", "label": "a"} for _ in range(25)] + GOOD
    with pytest.raises(DataError) as info:
        read_labeled(jsonl(tmp_path, rows))
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == "train.jsonl: 25 problems, the first 20 shown:"
    assert lines[1:] == [f"  line {i}: text is empty" for i in range(1, 21)]
    assert info.value.details["problem_count"] == 25
    assert len(info.value.details["problems"]) == 20


def test_label_sep_splits_labels_into_multi_label(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "text,label\none,billing|refund\ntwo, refund |billing\nthree,billing\n")
    texts, stats, task = read_labeled(path, ReadOptions(label_sep="|"))
    assert task is TaskType.MULTI_LABEL
    assert texts.labels == [("billing", "refund"), ("billing", "refund"), ("billing",)]
    assert stats.label_counts == {"billing": 3, "refund": 2}
    message = error_of(path, ReadOptions(label_sep="|", multi_label=False))
    assert "row 2: label has 2 labels ('billing', 'refund') but multi_label is off" in message


def test_list_labels_make_the_file_multi_label(tmp_path: Path) -> None:
    path = jsonl(tmp_path, [{"text": "x", "labels": ["a", "b", "a"]}, {"text": "y", "labels": "a"}, *GOOD[:0]])
    texts, _, task = read_labeled(path, min_examples=1)
    assert task is TaskType.MULTI_LABEL
    assert texts.labels == [("a", "b"), ("a",)]


def test_multi_label_can_be_forced_and_single_is_the_default(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GOOD)
    assert read_labeled(path)[2] is TaskType.SINGLE_LABEL
    assert read_labeled(path, ReadOptions(multi_label=True))[2] is TaskType.MULTI_LABEL


def test_numeric_labels_become_text(tmp_path: Path) -> None:
    path = jsonl(tmp_path, [{"text": "x", "label": 1}, {"text": "y", "label": 1.0}, {"text": "z", "label": 0.5}])
    texts, _, _ = read_labeled(path, min_examples=1)
    assert texts.labels == [("1",), ("1",), ("0.5",)]


def test_exact_and_normalized_duplicates_are_counted_separately(tmp_path: Path) -> None:
    body = "text,label\nHello  World,a\nhello world,a\nHello  World,a\nﬁne,a\nfine,a\nHELLO WORLD ,a\nother,a\n"
    texts, stats, _ = read_labeled(csv_file(tmp_path, body))
    assert texts.texts == ["Hello  World", "ﬁne", "other"]
    assert stats.exact_duplicates == 1
    assert stats.normalized_duplicates == 3
    assert stats.rows_read == 7
    assert stats.rows_read == stats.rows_kept + stats.exact_duplicates + stats.normalized_duplicates


def test_multi_label_duplicates_compare_label_sets(tmp_path: Path) -> None:
    rows = [
        {"text": "x", "labels": ["a", "b"]},
        {"text": "x", "labels": ["b", "a"]},
        {"text": "y", "labels": ["a", "b"]},
    ]
    _, stats, _ = read_labeled(jsonl(tmp_path, rows))
    assert stats.exact_duplicates == 1


def test_stats_are_json_and_hash_the_file(tmp_path: Path) -> None:
    path = jsonl(tmp_path, GOOD)
    _, stats, _ = read_labeled(path)
    as_dict = stats.to_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert stats.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert as_dict["format"] == "jsonl"


def test_bad_options_are_rejected() -> None:
    with pytest.raises(InvalidRequest, match="conflicts: must be 'majority', 'drop' or 'error'"):
        ReadOptions(conflicts="keep")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest, match="label_sep: must not be empty"):
        ReadOptions(label_sep="")


def test_min_examples_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="min_examples: 0, must be at least 1"):
        read_labeled(jsonl(tmp_path, GOOD), min_examples=0)
