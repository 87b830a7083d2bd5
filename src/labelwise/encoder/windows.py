"""Token windows: cutting long texts into overlapping model inputs, and padding windows into batches.

A text of `n` tokens (with [CLS] and [SEP]) fits one window when `n <= max_tokens`. A longer one is cut into
windows of `max_tokens` tokens, each with its own [CLS] and [SEP], consecutive windows sharing `overlap` tokens
so that no sentence is only seen cut in half. The encoder embeds each window and combines them per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

LongText = Literal["mean", "max", "truncate"]
LONG_TEXT_CHOICES: tuple[str, ...] = ("mean", "max", "truncate")


def split_windows(ids: Sequence[int], max_tokens: int, overlap: int, *, truncate: bool = False) -> list[list[int]]:
    """Cut one tokenized text (starting with [CLS], ending with [SEP]) into model windows."""
    if len(ids) <= max_tokens:
        return [list(ids)]
    cls_id, body, sep_id = ids[0], list(ids[1:-1]), ids[-1]
    width = max_tokens - 2
    if truncate:
        return [[cls_id, *body[:width], sep_id]]
    stride = max(width - overlap, 1)
    windows: list[list[int]] = []
    start = 0
    while True:
        windows.append([cls_id, *body[start : start + width], sep_id])
        if start + width >= len(body):
            return windows
        start += stride


@dataclass(frozen=True, slots=True)
class WindowBatch:
    """Model inputs for some windows, padded to the longest; `owner[i]` is the text index of row i."""

    input_ids: NDArray[np.int64]
    attention_mask: NDArray[np.int64]
    owner: NDArray[np.intp]

    @property
    def rows(self) -> int:
        return int(self.input_ids.shape[0])


def pad_windows(windows: Sequence[Sequence[int]], owners: Sequence[int], pad_id: int = 0) -> WindowBatch:
    """Right-pad `windows` into one batch.

    Padding does not change a window's vector: padded keys are masked with exact zeros in attention and the
    weights are quantized per row, so a text gets bit-identical vectors alone or in any batch (measured on
    random SST-2 fragments, batches of 2-8, and asserted in the tests).
    """
    length = max(len(w) for w in windows)
    ids = np.full((len(windows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(windows), length), dtype=np.int64)
    for row, window in enumerate(windows):
        ids[row, : len(window)] = window
        mask[row, : len(window)] = 1
    return WindowBatch(ids, mask, np.asarray(owners, dtype=np.intp))


# Transient memory of one ONNX Runtime call on the derived graph (quantize.py), measured as the growth of peak RSS
# in a fresh process: about 66 kB per padded token plus a little per (token, token) pair of a row (fused
# attention keeps about two float copies of the 12 heads' scores). 64 rows of 50 tokens: 208 MB; 32 of 128:
# 284 MB; 8 of 256: 133 MB; 1 of 512: 44 MB. The served calls are far smaller (Encoder.max_call_tokens).
BYTES_PER_TOKEN = 66_000
BYTES_PER_TOKEN_PAIR = 100


def batch_bytes(rows: int, length: int) -> int:
    """Estimated transient memory of running `rows` windows padded to `length` tokens."""
    return rows * (BYTES_PER_TOKEN * length + BYTES_PER_TOKEN_PAIR * length * length)


def chunk_windows(
    windows: Sequence[Sequence[int]],
    owners: Sequence[int],
    *,
    max_rows: int,
    max_bytes: int,
    max_tokens: int | None = None,
) -> list[WindowBatch]:
    """Group windows, shortest first, into batches of at most `max_rows` rows within a memory budget and, if
    given, at most `max_tokens` padded tokens (rows x length; a window longer than that runs alone).

    The memory budget bounds the peak memory of one inference call, which grows with rows x length^2
    (attention). The token budget keeps each call's activations small enough to stay in the CPU caches: on a
    2-core machine, calls of about 200 tokens ran 2-3 times faster per sentence than one call of 64 sentences.
    """
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    batches: list[WindowBatch] = []
    current: list[int] = []
    token_budget = max_tokens if max_tokens is not None else float("inf")
    for index in order:
        length = len(windows[index])  # sorted ascending: the newest window is the longest of the batch
        rows = len(current) + 1
        if current and (rows > max_rows or batch_bytes(rows, length) > max_bytes or rows * length > token_budget):
            batches.append(pad_windows([windows[i] for i in current], [owners[i] for i in current]))
            current = []
        current.append(index)
    if current:
        batches.append(pad_windows([windows[i] for i in current], [owners[i] for i in current]))
    return batches


def mean_pool(hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
    """Mean of the token vectors over real (unmasked) tokens, L2-normalized (sentence-transformers' recipe)."""
    weights = mask[..., np.newaxis].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    return normalize(pooled)


def normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: NDArray[np.float32] = (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
    return unit


class WindowAggregator:
    """Combines window vectors into one vector per text: token-weighted mean, or element-wise max."""

    def __init__(self, texts: int, dimensions: int, how: LongText, *, normalized: bool = True) -> None:
        self._how = how
        self._normalized = normalized
        self._weight = np.zeros(texts, dtype=np.float32)
        fill = -np.inf if how == "max" else 0.0
        self._acc = np.full((texts, dimensions), fill, dtype=np.float32)

    def add(self, vectors: NDArray[np.float32], owner: NDArray[np.intp], tokens: NDArray[np.int64]) -> None:
        if self._how == "max":
            np.maximum.at(self._acc, owner, vectors)
        else:
            # A short tail window should not weigh as much as a full one.
            np.add.at(self._acc, owner, vectors * tokens[:, np.newaxis].astype(np.float32))
            np.add.at(self._weight, owner, tokens.astype(np.float32))

    def result(self) -> NDArray[np.float32]:
        if self._normalized:
            return normalize(self._acc)
        if self._how == "max":
            return self._acc
        # Unnormalized vectors (a classifier's [CLS] features): the token-weighted mean itself.
        mean: NDArray[np.float32] = (self._acc / np.clip(self._weight, 1e-9, None)[:, np.newaxis]).astype(np.float32)
        return mean
