"""An LRU cache of probability rows, keyed by model version and a digest of the text.

Keys hold a digest rather than the text so that a cache full of long inputs stays small and raw text is never kept
longer than a request needs it. The cache is touched only from the event loop, so it needs no lock.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from labelwise.engines.base import FloatArray

CacheKey = tuple[str, bytes]


def text_digest(text: str) -> bytes:
    """A 128-bit digest of `text`; `surrogatepass` so lone surrogates hash instead of raising."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class PredictionCache:
    """Least-recently-used map from (model version ref, text digest) to that text's probability row."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rows: OrderedDict[CacheKey, FloatArray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: CacheKey) -> FloatArray | None:
        return self.get_many([key])[0]

    def put(self, key: CacheKey, row: FloatArray) -> None:
        self.put_many([key], [row])

    def get_many(self, keys: Sequence[CacheKey]) -> list[FloatArray | None]:
        """The row of each key, or None; found keys become the most recent."""
        rows, touch = self._rows, self._rows.move_to_end
        found = [rows.get(key) for key in keys]
        hits = 0
        for key, row in zip(keys, found, strict=True):
            if row is not None:
                touch(key)
                hits += 1
        self.hits += hits
        self.misses += len(keys) - hits
        return found

    def put_many(self, keys: Sequence[CacheKey], rows: Iterable[FloatArray]) -> None:
        """Hold each key's row (a copy, so one cached row does not keep a whole batch's matrix alive), as the
        most recent; then drop the least recent beyond `size`. One pass for a batch: per text, a put had been a
        tenth of a 64-text request outside the engine."""
        if self.size <= 0:
            return
        held = self._rows
        for key, row in zip(keys, rows, strict=True):
            if key in held:
                held.move_to_end(key)
            held[key] = row.copy()
        for _ in range(len(held) - self.size):
            held.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()
