"""A training dataset: the train, validation and test splits, read from the user's files and split if needed."""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labelwise.data.split import stratified_split, take
from labelwise.data.validate import DataStats, FileData, ReadOptions, read_file
from labelwise.domain import LabeledTexts, TaskType
from labelwise.errors import DataError, InvalidRequest

logger = logging.getLogger(__name__)

MAX_LABEL_WARNINGS = 20
_ROLES = ("train", "validation", "test")


@dataclass(frozen=True)
class Dataset:
    """Train, validation and (optionally) test rows with their task, sorted labels, per-file stats and warnings.

    `provenance` records how the splits were made (fractions, seed, which splits were carved from train, the
    read options), so a report can say exactly what a model was trained on.
    """

    train: LabeledTexts
    validation: LabeledTexts
    test: LabeledTexts | None
    task: TaskType
    labels: list[str]
    stats: dict[str, DataStats]
    warnings: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def data_sha256(self) -> str:
        """One hash of the files read: SHA-256 over each role and its file's SHA-256."""
        digest = hashlib.sha256()
        for role in _ROLES:
            if role in self.stats:
                digest.update(f"{role}:{self.stats[role].sha256}\n".encode())
        return digest.hexdigest()

    def splits(self) -> dict[str, LabeledTexts]:
        """The splits that exist, by name."""
        parts = {"train": self.train, "validation": self.validation}
        if self.test is not None:
            parts["test"] = self.test
        return parts

    def summary(self) -> dict[str, Any]:
        """A JSON-able description: task, labels, split sizes and label counts, file stats, warnings, hash."""
        return {
            "task": self.task.value,
            "labels": list(self.labels),
            "sizes": {name: len(part) for name, part in self.splits().items()},
            "label_counts": {name: _label_counts(part) for name, part in self.splits().items()},
            "stats": {role: stats.to_dict() for role, stats in self.stats.items()},
            "warnings": list(self.warnings),
            "provenance": dict(self.provenance),
            "data_sha256": self.data_sha256,
        }


def load_dataset(
    train: Path,
    options: ReadOptions = ReadOptions(),
    *,
    validation: Path | None = None,
    test: Path | None = None,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 13,
    min_examples: int = 2,
) -> Dataset:
    """Read the training file (and the validation and test files if given) and make the three splits.

    Missing splits are carved from train, stratified by label and deterministic for a given `seed`: all three
    by `split` when no file is given; otherwise the missing one keeps the ratio of `split` to train (with the
    default 80/10/10, 1/9 of train). Given validation and test files are checked like train (at least one
    example per label) but not de-duplicated against it; rows they share with train are counted in
    `warnings`. A label in validation or test that train lacks is a `DataError`. A test fraction of 0 with no
    test file gives `test=None`.
    """
    fractions = _check_fractions(split)
    train_data = read_file(train, options, min_examples=min_examples)
    given: dict[str, FileData] = {}
    for role, path in (("validation", validation), ("test", test)):
        if path is not None:
            given[role] = read_file(path, options, min_examples=1)
    _check_known_labels(train_data, given)
    parts, carved = _make_parts(train_data, given, fractions, seed)
    _check_not_empty(train_data, parts, carved)
    files = {"train": train_data, **given}
    tasks = {data.task for data in files.values()}
    task = TaskType.MULTI_LABEL if TaskType.MULTI_LABEL in tasks else TaskType.SINGLE_LABEL
    labels = sorted(train_data.stats.label_counts)
    if task is TaskType.SINGLE_LABEL and len(labels) < 2:
        raise DataError(f"{train.name}: only one label ({labels[0]!r}); a classifier needs at least two")
    warnings = _warnings(train_data, given, parts)
    dataset = Dataset(
        train=parts["train"],
        validation=parts["validation"],
        test=parts.get("test"),
        task=task,
        labels=labels,
        stats={role: data.stats for role, data in files.items()},
        warnings=warnings,
        provenance={
            "fractions": list(fractions),
            "seed": seed,
            "carved": carved,
            "min_examples": min_examples,
            "options": asdict(options),
        },
    )
    logger.info(
        "loaded dataset",
        extra={"sizes": {k: len(v) for k, v in dataset.splits().items()}, "labels": len(labels), "task": task.value},
    )
    return dataset


def _check_fractions(split: tuple[float, float, float]) -> tuple[float, float, float]:
    if len(split) != 3 or not all(isinstance(f, int | float) and math.isfinite(f) for f in split):
        raise InvalidRequest(f"split: expected three fractions (train, validation, test), got {split!r}", param="split")
    if min(split) < 0 or split[0] <= 0 or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
        raise InvalidRequest(
            f"split: {split!r}; fractions must be non-negative, train above 0, and sum to 1", param="split"
        )
    return (float(split[0]), float(split[1]), float(split[2]))


def _check_known_labels(train: FileData, given: dict[str, FileData]) -> None:
    """Every label of a validation or test file must be one the model can learn from train."""
    known = train.stats.label_counts
    train_name = Path(train.stats.path).name
    for data in given.values():
        unknown = sorted(set(data.stats.label_counts) - set(known))
        if unknown:
            name = Path(data.stats.path).name
            shown = ", ".join(repr(label) for label in unknown[:MAX_LABEL_WARNINGS])
            more = f" and {len(unknown) - MAX_LABEL_WARNINGS} more" if len(unknown) > MAX_LABEL_WARNINGS else ""
            noun = "label is" if len(unknown) == 1 else "labels are"
            raise DataError(f"{name}: {len(unknown)} {noun} not in the training data ({train_name}): {shown}{more}")


def _make_parts(
    train: FileData, given: dict[str, FileData], fractions: tuple[float, float, float], seed: int
) -> tuple[dict[str, LabeledTexts], list[str]]:
    """The splits by name, and the names of those carved from train."""
    p_train, p_val, p_test = fractions
    parts = {role: data.texts for role, data in given.items()}
    missing = [role for role in ("validation", "test") if role not in given]
    if "validation" in missing and p_val <= 0:
        raise InvalidRequest("split: the validation fraction is 0 and no validation file was given", param="split")
    if "test" in missing and p_test <= 0:
        missing.remove("test")
    if not missing:
        parts["train"] = train.texts
        return parts, []
    # A carved split keeps its ratio to train: with only test given, validation is p_val / (p_train + p_val).
    scale = p_train + sum(fractions[_ROLES.index(role)] for role in missing)
    carve = [p_train / scale] + [fractions[_ROLES.index(role)] / scale for role in missing]
    indices = stratified_split(train.texts.labels, carve, seed)
    parts["train"] = take(train.texts, indices[0])
    for role, part in zip(missing, indices[1:], strict=True):
        parts[role] = take(train.texts, part)
    return parts, missing


def _check_not_empty(train: FileData, parts: dict[str, LabeledTexts], carved: list[str]) -> None:
    for role in carved:
        if len(parts[role]) == 0:
            name = Path(train.stats.path).name
            raise DataError(
                f"{name}: no rows left for the {role} split: every label has too few rows to spare one; "
                f"add rows or give a {role} file"
            )


def _warnings(train: FileData, given: dict[str, FileData], parts: dict[str, LabeledTexts]) -> list[str]:
    warnings: list[str] = []
    missing: list[str] = []
    present = {role: set(_label_counts(part)) for role, part in parts.items() if role != "train"}
    for label, count in train.stats.label_counts.items():
        absent = [role for role, labels in present.items() if label not in labels]
        if absent:
            rows = "row" if count == 1 else "rows"
            missing.append(f"label {label!r} ({count} {rows}) is not in the {' or '.join(absent)} split")
    warnings.extend(missing[:MAX_LABEL_WARNINGS])
    if len(missing) > MAX_LABEL_WARNINGS:
        warnings.append(f"{len(missing) - MAX_LABEL_WARNINGS} more labels are missing from some split")
    train_keys = set(train.keys)
    for role, data in given.items():
        shared = sum(1 for key in data.keys if key in train_keys)
        if shared:
            share = 100 * shared / len(data.keys)
            warnings.append(
                f"{shared} of {len(data.keys)} {role} rows ({share:.1f}%) also appear in train (same text "
                "ignoring case and spacing)"
            )
    return warnings


def _label_counts(data: LabeledTexts) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for labels in data.labels:
        counts.update(labels)
    return dict(sorted(counts.items()))
