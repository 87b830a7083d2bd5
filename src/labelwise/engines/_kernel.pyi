"""Types of the C extension built from `_kernel.c` (n-gram lookup and TF-IDF scoring of the linear engine)."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

class Index:
    """A model's n-gram vocabulary (sorted gram hashes and their feature ids), with a per-word cache."""

    def __init__(
        self,
        hashes: NDArray[np.uint64],
        ids: NDArray[np.int64],
        n_word: int,
        word_ngrams: int,
        char_ngrams: tuple[int, int],
        cache_words: int,
    ) -> None: ...
    @property
    def cached_words(self) -> int: ...
    def hits(self, texts: Sequence[str], /) -> tuple[bytes, bytes]:
        """Rows and feature ids (int64, native order) of every vocabulary gram occurrence of the lowered texts."""
    def scores(
        self,
        texts: Sequence[str],
        idf: NDArray[np.float64],
        coef: NDArray[np.float32],
        out: NDArray[np.float64],
    ) -> None:
        """Fill `out[i]` with the TF-IDF row of the lowered `texts[i]` times `coef` (n_features x n_classes)."""
    def clear_cache(self) -> None: ...

def vocabulary_hashes(word_grams: Sequence[str], char_grams: Sequence[str], /) -> bytes:
    """The uint64 hash (native order) of each word gram, then of each character gram (salted)."""
