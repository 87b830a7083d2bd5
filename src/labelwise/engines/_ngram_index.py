"""The n-gram features of `_tfidf` (`word_grams`, `char_grams`) and the index that finds them in texts.

Each gram is identified by a 64-bit hash. The C kernel (`_kernel.c`) hashes the vocabulary once per model (saved
with it as `HashedVocabulary`), and for every text hashes its grams by the same recipe (`HASH_RECIPE`) and probes
the vocabulary's sorted hashes, with a per-word cache of character gram ids:

- A span of code points (every whitespace character as a space) hashes to `mix(sum mix(c_i) * B**i + n * LENGTH)`
  modulo 2**64, with SplitMix64's finalizer as `mix`.
- A word n-gram chains its tokens' hashes ("<s> what is": three tokens); character grams are salted, which keeps
  the two blocks apart.

Two different grams share a hash with probability about 2**-64 per pair; a collision would credit a gram's weight
to another gram, never raise. The kernel's features equal the dictionary definition (`TfidfFeaturizer.ids`)
exactly; tests compare both on every shared dataset and on awkward input (surrogates, NUL, non-ASCII whitespace
and digits, characters whose lower case is longer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from labelwise.engines import _kernel

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]
FloatArray = NDArray[np.float64]

_CACHE_WORDS = 1 << 16


_TOKEN = re.compile(r"\w+")
# Sentence boundary markers cannot collide with tokens: `\w+` never matches "<" or ">".
_BOS, _EOS = "<s>", "</s>"


def word_grams(lowered: str, max_n: int) -> list[str]:
    """Word unigrams plus 2..max_n-grams over the tokens padded with sentence boundary markers.

    The markers turn "what is" at the start of a question into its own feature, which matters for short texts
    such as questions and intents where the first words carry the class.
    """
    tokens = _TOKEN.findall(lowered)
    grams = list(tokens)
    if max_n >= 2:
        padded = [_BOS, *tokens, _EOS]
        for n in range(2, max_n + 1):
            grams.extend(" ".join(padded[i : i + n]) for i in range(len(padded) - n + 1))
    return grams


def char_grams(lowered: str, lo: int, hi: int) -> list[str]:
    """Character lo..hi-grams of each whitespace-separated word padded with one space on each side.

    A word shorter than n contributes itself once (as scikit-learn's `char_wb` does), not n copies.
    """
    grams: list[str] = []
    for word in lowered.split():
        padded = f" {word} "
        size = len(padded)
        for n in range(lo, hi + 1):
            if size <= n:
                grams.append(padded)
                break
            grams.extend([padded[i : i + n] for i in range(size - n + 1)])
    return grams


# Part of a saved model (`HashedVocabulary`): bump when the hash functions change, and saved hashes are recomputed.
HASH_RECIPE = "splitmix-poly64-v1"


class HashedVocabulary(NamedTuple):
    """The vocabulary's gram hashes, sorted, and the feature id of each: computing them is most of a model's load
    time (0.4 s for 300,000 grams), so the linear engine saves them beside the vocabulary."""

    hashes: U64
    ids: I64
    recipe: str = HASH_RECIPE


class GramHits(NamedTuple):
    """Vocabulary hits of a batch: the text (row) and the feature id of each gram occurrence found."""

    rows: I64
    ids: I64


def hash_vocabulary(word_vocab: Sequence[str], char_vocab: Sequence[str]) -> HashedVocabulary:
    """The sorted gram hashes of a vocabulary (word grams, then character grams) and the feature id of each."""
    hashes = np.frombuffer(_kernel.vocabulary_hashes(word_vocab, char_vocab), dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    return HashedVocabulary(hashes[order], order.astype(np.int64))


class NgramIndex:
    """A vocabulary of word and character n-grams; finds the grams of texts and scores texts (`_kernel.c`).

    The kernel keeps the character gram ids of up to `cache_words` words (most words of a text were seen before:
    one probe instead of about fifteen gram hashes); when full it empties, so frequent words come back at once and
    one-off words (ids, numbers) go. Calls hold the GIL throughout, so one index serves several threads.
    """

    def __init__(
        self,
        word_vocab: Sequence[str],
        char_vocab: Sequence[str],
        *,
        word_ngrams: int,
        char_ngrams: tuple[int, int],
        cache_words: int = _CACHE_WORDS,
        hashed: HashedVocabulary | None = None,
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        # Gram -> feature id (character grams after the word block), for the plain definition and explanations.
        self.word_index = {gram: i for i, gram in enumerate(word_vocab)}
        self.char_index = {gram: i for i, gram in enumerate(char_vocab, start=len(word_vocab))}
        n_grams = len(word_vocab) + len(char_vocab)
        if hashed is None or hashed.recipe != HASH_RECIPE or len(hashed.hashes) != n_grams:
            hashed = hash_vocabulary(word_vocab, char_vocab)
        self.hashed = hashed
        self.kernel = _kernel.Index(hashed.hashes, hashed.ids, len(word_vocab), word_ngrams, char_ngrams, cache_words)

    def lookup(self, texts: Sequence[str]) -> GramHits:
        """Row (index into `texts`) and feature id of every gram occurrence in the vocabulary, repeats kept."""
        rows, ids = self.kernel.hits([t.lower() for t in texts])
        return GramHits(np.frombuffer(rows, dtype=np.int64), np.frombuffer(ids, dtype=np.int64))

    def scores(self, texts: Sequence[str], idf: FloatArray, coef: NDArray[np.float32]) -> FloatArray:
        """`tfidf(texts) @ coef` as float64, without building the TF-IDF rows (see `_tfidf.TfidfFeaturizer.rows`)."""
        out = np.empty((len(texts), coef.shape[1]), dtype=np.float64)
        self.kernel.scores([t.lower() for t in texts], idf, coef, out)
        return out
