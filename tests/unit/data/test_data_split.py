"""Splits: sizes, stratification, determinism, carving from user-given files, warnings and errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labelwise.data import Dataset, ReadOptions, load_dataset, stratified_split, stratum_keys
from labelwise.domain import LabeledTexts, TaskType
from labelwise.errors import DataError, InvalidRequest


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def labeled(path: Path, counts: dict[str, int], prefix: str = "") -> Path:
    rows = [{"text": f"{prefix}{label} example {i}", "label": label} for label, n in counts.items() for i in range(n)]
    return jsonl(path, rows)


def counts_of(data: LabeledTexts) -> Counter[str]:
    return Counter(label for labels in data.labels for label in labels)


def test_default_split_is_80_10_10_and_stratified(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 500, "b": 300, "c": 200})
    dataset = load_dataset(path)
    assert dataset.test is not None
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (800, 100, 100)
    assert counts_of(dataset.validation) == {"a": 50, "b": 30, "c": 20}
    assert counts_of(dataset.test) == {"a": 50, "b": 30, "c": 20}
    all_texts = dataset.train.texts + dataset.validation.texts + dataset.test.texts
    assert len(set(all_texts)) == 1000
    assert dataset.labels == ["a", "b", "c"]
    assert dataset.task is TaskType.SINGLE_LABEL
    assert dataset.warnings == []


def test_split_is_deterministic_and_follows_the_seed(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 60, "b": 40})
    first, second = load_dataset(path), load_dataset(path)
    assert first.validation.texts == second.validation.texts
    assert first.test == second.test
    other = load_dataset(path, seed=14)
    assert other.validation.texts != first.validation.texts
    assert len(other.validation) == len(first.validation)


def test_custom_fractions_and_no_test(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 50, "b": 50})
    dataset = load_dataset(path, split=(0.7, 0.3, 0.0))
    assert dataset.test is None
    assert (len(dataset.train), len(dataset.validation)) == (70, 30)
    assert "test" not in dataset.summary()["sizes"]


def test_only_test_given_carves_one_ninth_of_train_for_validation(tmp_path: Path) -> None:
    train = labeled(tmp_path / "train.jsonl", {"a": 90, "b": 45, "c": 2})
    test = labeled(tmp_path / "test.jsonl", {"a": 5, "b": 5}, prefix="test ")
    dataset = load_dataset(train, test=test, min_examples=2)
    assert dataset.test is not None
    assert len(dataset.test) == 10
    assert counts_of(dataset.validation) == {"a": 10, "b": 5, "c": 1}
    assert len(dataset.train) == 137 - 16
    assert dataset.provenance["carved"] == ["validation"]
    assert "label 'c' (2 rows) is not in the test split" in dataset.warnings


def test_only_validation_given_carves_test(tmp_path: Path) -> None:
    train = labeled(tmp_path / "train.jsonl", {"a": 45, "b": 45})
    validation = labeled(tmp_path / "dev.jsonl", {"a": 3, "b": 3}, prefix="dev ")
    dataset = load_dataset(train, validation=validation)
    assert dataset.test is not None
    assert counts_of(dataset.test) == {"a": 5, "b": 5}
    assert len(dataset.validation) == 6
    assert set(dataset.stats) == {"train", "validation"}


def test_both_given_keeps_train_whole_and_reports_overlap(tmp_path: Path) -> None:
    train = labeled(tmp_path / "train.jsonl", {"a": 10, "b": 10})
    validation = labeled(tmp_path / "dev.jsonl", {"a": 2, "b": 2}, prefix="dev ")
    test = jsonl(tmp_path / "test.jsonl", [{"text": "A EXAMPLE 1", "label": "a"}, {"text": "new", "label": "b"}])
    dataset = load_dataset(train, validation=validation, test=test)
    assert len(dataset.train) == 20
    assert "1 of 2 test rows (50.0%) also appear in train (same text ignoring case and spacing)" in dataset.warnings


def test_rare_labels_stay_in_train_with_a_warning(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 40, "b": 40, "rare": 2})
    dataset = load_dataset(path)
    assert counts_of(dataset.train)["rare"] == 2
    assert "label 'rare' (2 rows) is not in the validation or test split" in dataset.warnings


def test_small_labels_get_one_row_in_each_split_where_possible(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 40, "b": 40, "small": 3})
    dataset = load_dataset(path)
    assert dataset.test is not None
    assert (counts_of(dataset.train)["small"], counts_of(dataset.validation)["small"]) == (1, 1)
    assert counts_of(dataset.test)["small"] == 1


def test_label_missing_from_train_is_an_error(tmp_path: Path) -> None:
    train = labeled(tmp_path / "train.jsonl", {"a": 10, "b": 10})
    test = labeled(tmp_path / "test.jsonl", {"a": 1, "zzz": 1}, prefix="t ")
    with pytest.raises(DataError, match=r"^test\.jsonl: 1 label is not in the training data \(train\.jsonl\): 'zzz'$"):
        load_dataset(train, test=test)


def test_given_files_are_validated(tmp_path: Path) -> None:
    train = labeled(tmp_path / "train.jsonl", {"a": 10, "b": 10})
    test = jsonl(tmp_path / "test.jsonl", [{"text": "fine", "label": "a"}, {"text": " ", "label": "b"}])
    with pytest.raises(DataError, match=r"^test\.jsonl line 2: text is only whitespace$"):
        load_dataset(train, test=test)


def test_too_few_rows_for_validation_is_an_error(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 2, "b": 2})
    with pytest.raises(DataError, match="no rows left for the validation split"):
        load_dataset(path)


def test_single_label_needs_two_labels(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 30})
    with pytest.raises(DataError, match="only one label \\('a'\\); a classifier needs at least two"):
        load_dataset(path)


@pytest.mark.parametrize("split", [(0.8, 0.1, 0.2), (0.0, 0.5, 0.5), (0.9, -0.1, 0.2), (0.9, 0.0, 0.1)])
def test_bad_fractions_are_rejected(tmp_path: Path, split: tuple[float, float, float]) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 10, "b": 10})
    with pytest.raises(InvalidRequest, match="split"):
        load_dataset(path, split=split)


def test_multi_label_rows_are_stratified_on_their_rarest_label() -> None:
    labels = [("common",)] * 50 + [("common", "rare")] * 10
    assert stratum_keys(labels)[-1] == "rare"
    train, validation, test = stratified_split(labels, [0.8, 0.1, 0.1], seed=13)
    assert sum(1 for i in validation if "rare" in labels[i]) == 1
    assert sum(1 for i in test if "rare" in labels[i]) == 1
    assert sorted(train + validation + test) == list(range(60))


def test_adding_a_label_does_not_reshuffle_the_others() -> None:
    labels = [("a",)] * 30 + [("b",)] * 30
    before = stratified_split(labels, [0.8, 0.2], seed=13)
    after = stratified_split([*labels, *[("c",)] * 10], [0.8, 0.2], seed=13)
    assert [i for i in after[1] if i < 60] == before[1]


def test_summary_is_json(tmp_path: Path) -> None:
    path = labeled(tmp_path / "train.jsonl", {"a": 20, "b": 20})
    dataset: Dataset = load_dataset(path, ReadOptions(conflicts="drop"))
    summary = dataset.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["sizes"] == {"train": 32, "validation": 4, "test": 4}
    assert summary["provenance"]["seed"] == 13
    assert summary["provenance"]["options"]["conflicts"] == "drop"
    assert len(summary["data_sha256"]) == 64
    assert summary["stats"]["train"]["rows_read"] == 40
