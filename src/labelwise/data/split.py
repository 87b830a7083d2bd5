"""Deterministic stratified splits.

Each row belongs to one stratum: its label, or for multi-label rows its rarest label (ties broken by name), which
is simple, deterministic, and keeps rare labels spread over the parts. Every stratum is shuffled with its own
generator seeded from the seed and the stratum's name, so adding rows of one label never reshuffles another.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

from labelwise.domain import LabeledTexts


def stratum_keys(labels: Sequence[tuple[str, ...]]) -> list[str]:
    """The stratum of each row: its rarest label across all rows, the alphabetically first on ties."""
    counts: Counter[str] = Counter()
    for row in labels:
        counts.update(row)
    return [min(row, key=lambda label: (counts[label], label)) for row in labels]


def stratified_split(labels: Sequence[tuple[str, ...]], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split row indices into one part per fraction, each stratum in proportion, deterministically.

    Part 0 takes what the other parts leave. Each other part with a nonzero fraction gets at least one row of
    every stratum that has enough rows to appear in every such part and in part 0; smaller strata go wholly
    to part 0. Part sizes follow the fractions of the eligible rows by largest remainders. Indices in each part
    are in ascending order.
    """
    strata: dict[str, list[int]] = {}
    for index, key in enumerate(stratum_keys(labels)):
        strata.setdefault(key, []).append(index)
    needed = 1 + sum(1 for fraction in fractions[1:] if fraction > 0)
    eligible = {key: rows for key, rows in strata.items() if len(rows) >= needed}
    counts = _allocate({key: len(rows) for key, rows in eligible.items()}, fractions)
    parts: list[list[int]] = [[] for _ in fractions]
    for key, rows in strata.items():
        if key not in counts:
            parts[0].extend(rows)
            continue
        order = list(rows)
        random.Random(f"{seed}:{key}").shuffle(order)
        start = 0
        for part in range(1, len(fractions)):
            parts[part].extend(order[start : start + counts[key][part]])
            start += counts[key][part]
        parts[0].extend(order[start:])
    return [sorted(part) for part in parts]


def _allocate(sizes: dict[str, int], fractions: Sequence[float]) -> dict[str, list[int]]:
    """Rows per part for each stratum: floors of the ideal shares, the remainder to the largest fractions."""
    total = sum(sizes.values())
    counts = {key: [0] * len(fractions) for key in sizes}
    for part in range(1, len(fractions)):
        fraction = fractions[part]
        if fraction <= 0:
            continue
        ideal = {key: size * fraction for key, size in sizes.items()}
        floors = {key: math.floor(value) for key, value in ideal.items()}
        deficit = round(total * fraction) - sum(floors.values())
        by_remainder = sorted(sizes, key=lambda key: (floors[key] - ideal[key], key))
        for key in by_remainder[: max(deficit, 0)]:
            floors[key] += 1
        for key in sizes:
            counts[key][part] = max(1, floors[key])
    for key, size in sizes.items():
        # Part 0 keeps at least one row: take back from the largest other part while it has more than one.
        while sum(counts[key][1:]) > size - 1:
            largest = max(range(1, len(fractions)), key=lambda part: counts[key][part])
            counts[key][largest] -= 1
        counts[key][0] = size - sum(counts[key][1:])
    return counts


def take(data: LabeledTexts, indices: Sequence[int]) -> LabeledTexts:
    """The rows of `data` at `indices`, in that order."""
    return LabeledTexts([data.texts[i] for i in indices], [data.labels[i] for i in indices])
