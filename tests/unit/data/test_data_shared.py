"""Reading the shared public datasets (skipped where ../shared/data is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labelwise.data import ReadOptions, load_dataset, read_labeled
from labelwise.domain import TaskType
from labelwise.errors import DataError

SHARED = Path(os.environ.get("LABELWISE_SHARED_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))


def shared_file(name: str, split: str) -> Path:
    path = SHARED / name / f"{split}.jsonl"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is absent (set LABELWISE_SHARED_DATA to its folder)")
    return path


def test_banking77_reads_as_single_label() -> None:
    texts, stats, task = read_labeled(shared_file("banking77", "train"))
    assert task is TaskType.SINGLE_LABEL
    assert stats.rows_read == 10003
    assert len(stats.label_counts) == 77
    assert stats.rows_kept + stats.exact_duplicates + stats.normalized_duplicates == stats.rows_read
    assert len(texts) == stats.rows_kept


def test_banking77_with_its_test_file() -> None:
    dataset = load_dataset(shared_file("banking77", "train"), test=shared_file("banking77", "test"))
    assert dataset.test is not None
    assert len(dataset.test) > 3000
    assert len(dataset.validation) == pytest.approx(len(dataset.train) / 8, rel=0.02)
    assert set(dataset.summary()["label_counts"]["validation"]) == set(dataset.labels)


def test_emotion_conflicts_are_all_ties_and_dropped() -> None:
    # emotion's train split repeats 30 tweets with two different labels, one row each: every one is a tie.
    texts, stats, _ = read_labeled(shared_file("emotion", "train"))
    assert (stats.conflicts_resolved, stats.conflicts_dropped, stats.conflicting_rows_dropped) == (0, 30, 60)
    assert len(texts) == stats.rows_kept == 16000 - 60 - stats.exact_duplicates - stats.normalized_duplicates


def test_goemotions_conflicts_keep_the_majority_label_set() -> None:
    texts, stats, task = read_labeled(shared_file("goemotions", "train"))
    assert task is TaskType.MULTI_LABEL
    assert (stats.conflicts_resolved, stats.conflicts_dropped) == (19, 43)
    assert stats.rows_read == (
        stats.rows_kept + stats.exact_duplicates + stats.normalized_duplicates + stats.conflicting_rows_dropped
    )
    # "[NAME]" is labeled 'disgust' once (its first row) and 'neutral' five times: it stays, as neutral.
    assert texts.labels[texts.texts.index("[NAME]")] == ("neutral",)


def test_goemotions_conflicts_named_by_line_with_on_conflict_error() -> None:
    with pytest.raises(DataError) as info:
        read_labeled(shared_file("goemotions", "train"), ReadOptions(conflicts="error"))
    message = str(info.value)
    assert "62 texts have conflicting labels and on_conflict (--on-conflict) is 'error'" in message
    assert "line 8989: same text as line 198 but different labels ('neutral' here, 'disgust' there)" in message
    assert message.splitlines()[1].startswith("  line ")


def test_goemotions_reads_as_multi_label_when_conflicts_are_dropped() -> None:
    options = ReadOptions(conflicts="drop")
    dataset = load_dataset(
        shared_file("goemotions", "train"),
        options,
        validation=shared_file("goemotions", "dev"),
        test=shared_file("goemotions", "test"),
    )
    assert dataset.task is TaskType.MULTI_LABEL
    assert len(dataset.labels) == 28
    assert any(len(labels) > 1 for labels in dataset.train.labels)
    assert dataset.stats["train"].conflicting_rows_dropped > 0
    assert len(dataset.train) > 43000
