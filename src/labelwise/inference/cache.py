"""An LRU cache of probability rows, keyed by model version and a digest of the text.

Keys hold a digest rather than the text so that a cache full of long inputs stays small and raw text is never kept
longer than a request needs it. The cache is touched only from the event loop, so it needs no lock.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

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
        row = self._rows.get(key)
        if row is None:
            self.misses += 1
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return row

    def put(self, key: CacheKey, row: FloatArray) -> None:
        if self.size <= 0:
            return
        # A copy, so one cached row does not keep a whole batch's matrix alive.
        self._rows[key] = row.copy()
        self._rows.move_to_end(key)
        while len(self._rows) > self.size:
            self._rows.popitem(last=False)

    def clear(self) -> None:
        self._rows.clear()
