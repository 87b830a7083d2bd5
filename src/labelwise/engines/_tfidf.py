"""TF-IDF features over word and character n-grams: learned in Python, computed by the C kernel (`_kernel.c`).

We do not use scikit-learn's `TfidfVectorizer` at prediction time: its input validation costs more than the
arithmetic for one short text, and rebuilding it on load ties the artifact to private attributes. Training,
`transform` and explanations build rows from the kernel's gram hits (`rows`); prediction lets the kernel go from
texts to scores (`scores`) with the same counting, weighting and normalization. `ids` is the plain definition,
gram by gram through dictionaries; the tests hold the kernel equal to it.

The feature vector is two blocks, word n-grams and character n-grams inside word boundaries, each with
sublinear term frequency, smoothed idf and its own L2 normalization (so neither block drowns the other).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from labelwise.engines._ngram_index import HashedVocabulary, NgramIndex, char_grams, word_grams

if TYPE_CHECKING:  # serving never builds a sparse matrix, so a server does not import scipy (0.2 s of start-up)
    from scipy import sparse

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class CsrParts(NamedTuple):
    """A CSR matrix as its three arrays, before (or instead of) building a scipy matrix."""

    values: NDArray[np.floating[Any]]
    indices: IntArray
    indptr: IntArray


@dataclass(frozen=True, slots=True)
class TfidfConfig:
    """How text becomes features; JSON-able through `to_dict`/`from_dict`."""

    word_ngrams: int = 2
    char_ngrams: tuple[int, int] = (2, 5)
    word_min_df: int = 1
    char_min_df: int = 2
    max_features: int = 300_000

    def to_dict(self) -> dict[str, Any]:
        return {
            "word_ngrams": self.word_ngrams,
            "char_ngrams": list(self.char_ngrams),
            "word_min_df": self.word_min_df,
            "char_min_df": self.char_min_df,
            "max_features": self.max_features,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TfidfConfig:
        lo, hi = data["char_ngrams"]
        return cls(
            word_ngrams=int(data["word_ngrams"]),
            char_ngrams=(int(lo), int(hi)),
            word_min_df=int(data["word_min_df"]),
            char_min_df=int(data["char_min_df"]),
            max_features=int(data["max_features"]),
        )


class TfidfFeaturizer:
    """Learned vocabularies and idf weights; turns texts into L2-normalized TF-IDF rows."""

    def __init__(
        self,
        config: TfidfConfig,
        word_vocab: list[str],
        char_vocab: list[str],
        idf: FloatArray,
        hashed: HashedVocabulary | None = None,
    ) -> None:
        if len(idf) != len(word_vocab) + len(char_vocab):
            raise ValueError("idf length differs from the vocabulary size")
        self.config = config
        self.word_vocab = word_vocab
        self.char_vocab = char_vocab
        self.idf = np.ascontiguousarray(idf, dtype=np.float64)  # the kernel reads it as a flat float64 buffer
        self._n_word = len(word_vocab)
        self._index = NgramIndex(
            word_vocab, char_vocab, word_ngrams=config.word_ngrams, char_ngrams=config.char_ngrams, hashed=hashed
        )

    @property
    def hashed(self) -> HashedVocabulary:
        """The vocabulary's gram hashes, to save with the model and hand back to `from_json`."""
        return self._index.hashed

    @property
    def n_features(self) -> int:
        return len(self.idf)

    @classmethod
    def fit(cls, texts: Sequence[str], config: TfidfConfig) -> TfidfFeaturizer:
        """Learn vocabularies (minimum document frequency, at most `max_features` by frequency) and idf."""
        word_df: Counter[str] = Counter()
        char_df: Counter[str] = Counter()
        lo, hi = config.char_ngrams
        # Words repeat across documents (Zipf), so each distinct word is cut into grams only once.
        grams_of: dict[str, frozenset[str]] = {}
        for text in texts:
            lowered = text.lower()
            word_df.update(set(word_grams(lowered, config.word_ngrams)))
            doc: set[str] = set()
            for word in lowered.split():
                grams = grams_of.get(word)
                if grams is None:
                    grams = grams_of[word] = frozenset(char_grams(word, lo, hi))
                doc.update(grams)
            char_df.update(doc)
        words = _select(word_df, config.word_min_df)
        chars = _select(char_df, config.char_min_df)
        words, chars = _cap(words, chars, word_df, char_df, config.max_features)
        n_docs = len(texts)
        df = np.array([word_df[g] for g in words] + [char_df[g] for g in chars], dtype=np.float64)
        # Smoothed idf as in scikit-learn: as if one extra document contained every term once.
        idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        return cls(config, words, chars, idf)

    @property
    def word_index(self) -> dict[str, int]:
        """Word gram -> feature id."""
        return self._index.word_index

    @property
    def char_index(self) -> dict[str, int]:
        """Character gram -> feature id (after the word block)."""
        return self._index.char_index

    def ids(self, text: str) -> list[int]:
        """Feature ids of every n-gram occurrence in `text` that is in the vocabulary (repeats kept).

        The plain definition, gram by gram through dictionaries; the kernel finds the same ids by hashes, and the
        tests hold the two equal.
        """
        word_index, char_index = self.word_index, self.char_index
        lowered = text.lower()
        found = [word_index[g] for g in word_grams(lowered, self.config.word_ngrams) if g in word_index]
        lo, hi = self.config.char_ngrams
        found.extend(char_index[g] for g in char_grams(lowered, lo, hi) if g in char_index)
        return found

    def rows(self, texts: Sequence[str], dtype: type[np.floating[Any]] = np.float64) -> CsrParts:
        """CSR parts (values, column indices, row pointers) of the TF-IDF rows of `texts`.

        The kernel finds the grams (the same ids as `ids`); counting, weighting and normalizing run once over the
        batch in NumPy. Within a row, columns are sorted.
        """
        n_rows = len(texts)
        hits = self._index.lookup(texts)
        # One sort of (row, feature) keys counts repeats and leaves the entries in CSR order.
        keys = np.sort((hits.rows << 32) | hits.ids)
        first = np.empty(len(keys), dtype=np.bool_)
        first[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        keys = keys[starts]
        counts = np.diff(starts, append=len(first))
        row_of, column = keys >> 32, keys & 0xFFFFFFFF
        values = self.idf[column]
        repeated = np.flatnonzero(counts > 1)  # most grams occur once in a text: 1 + log(1) is 1
        values[repeated] *= 1.0 + np.log(counts[repeated])
        # Each block (words, characters) of each row gets its own L2 norm.
        block = 2 * row_of + (column >= self._n_word)
        norms = np.sqrt(np.bincount(block, weights=values * values, minlength=2 * n_rows))
        values = values / norms[block]
        indptr = np.searchsorted(row_of, np.arange(n_rows + 1, dtype=np.int64))
        return CsrParts(values.astype(dtype, copy=False), column, indptr)

    def scores(self, texts: Sequence[str], coef: NDArray[np.float32]) -> FloatArray:
        """The TF-IDF rows of `texts` times `coef` (float32, C order, n_features x n_classes), as float64.

        Equal to `transform(texts) @ coef` up to float rounding, without building the rows: the kernel counts each
        text's repeats and sums its weight rows in a fixed order, so a text scores the same alone or in any batch.
        """
        return self._index.scores(texts, self.idf, coef)

    def transform(self, texts: Sequence[str], dtype: type[np.floating[Any]] = np.float64) -> sparse.csr_matrix:
        """A CSR matrix with one L2-normalized TF-IDF row per text."""
        from scipy import sparse

        parts = self.rows(texts, dtype)
        return sparse.csr_matrix((parts.values, parts.indices, parts.indptr), shape=(len(texts), self.n_features))

    def vocabulary_json(self) -> dict[str, Any]:
        """The vocabularies as JSON lists ordered by feature index, plus the config."""
        return {"config": self.config.to_dict(), "word": self.word_vocab, "char": self.char_vocab}

    @classmethod
    def from_json(
        cls, data: dict[str, Any], idf: FloatArray, hashed: HashedVocabulary | None = None
    ) -> TfidfFeaturizer:
        """Rebuild from `vocabulary_json()` output and the saved idf array (and hashes, if saved: faster)."""
        words = data["word"]
        chars = data["char"]
        if not isinstance(words, list) or not isinstance(chars, list):
            raise ValueError("vocabulary lists are missing")
        return cls(TfidfConfig.from_dict(data["config"]), words, chars, np.asarray(idf, dtype=np.float64), hashed)


def _select(df: Counter[str], min_df: int) -> list[str]:
    return sorted(gram for gram, count in df.items() if count >= min_df)


def _cap(
    words: list[str], chars: list[str], word_df: Counter[str], char_df: Counter[str], limit: int
) -> tuple[list[str], list[str]]:
    """Keep the `limit` most frequent grams over both blocks (ties broken by the gram, for determinism)."""
    if len(words) + len(chars) <= limit:
        return words, chars
    ranked = sorted(
        [(-word_df[g], 0, g) for g in words] + [(-char_df[g], 1, g) for g in chars],
    )[:limit]
    kept_words = sorted(g for _, block, g in ranked if block == 0)
    kept_chars = sorted(g for _, block, g in ranked if block == 1)
    return kept_words, kept_chars
