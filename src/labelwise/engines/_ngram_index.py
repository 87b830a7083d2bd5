"""The n-gram features of `_tfidf` (`word_grams`, `char_grams`) and the index that finds them in texts.

Each gram is identified by a 64-bit hash; the C kernel (`_kernel.c`) hashes a text's grams and probes the
vocabulary's sorted hashes, text by text, with a per-word cache of character gram ids. This module hashes the
vocabulary itself, with NumPy, by the same recipe (`HASH_RECIPE`), once per model (saved with it as
`HashedVocabulary`):

- The grams are lowered, joined with a newline between them and at both ends, and turned into an array of code
  points; every whitespace character becomes a space.
- With prefix sums of `mix(code[k]) * B**k` (arithmetic modulo 2**64), the hash of any span of the array costs
  two subtractions and a multiplication, for all spans at once: `mix(sum mix(c_i) * B**i + n * LENGTH)`.
- A word n-gram is hashed from its tokens' hashes (`_combine`); character grams are salted.

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

_BASE = 0x9E3779B97F4A7C15  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_LENGTH = np.uint64(0xD6E8FEB86659FD93)
_COMBINE = np.uint64(0xA0761D6478BD642F)
_CHAR_SALT = np.uint64(0xE7037ED1A0B428DB)  # keeps the word block and the character block apart
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_SPACE = 32
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


def _mix(x: U64) -> U64:
    """SplitMix64's finalizer: spreads every input bit over the whole word (wraps modulo 2**64)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


# B**k and B**-k modulo 2**64 for k below a size that grows on demand. The pair is replaced as one tuple, so a
# thread never sees a new `up` beside an old, shorter `down`.
_POWERS: list[tuple[U64, U64]] = [(np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64))]


def _cumprod_power(base: int, size: int) -> U64:
    out = np.empty(size, dtype=np.uint64)
    out[0] = 1
    if size > 1:
        out[1:] = np.cumprod(np.full(size - 1, base, dtype=np.uint64))
    return out


def _powers(size: int) -> tuple[U64, U64]:
    up, down = _POWERS[0]
    if len(up) < size:
        size = max(size, 2 * len(up), 1024)
        up, down = _cumprod_power(_BASE, size), _cumprod_power(_BASE_INVERSE, size)
        _POWERS[0] = (up, down)
    return up, down


class _Codes(NamedTuple):
    """Strings as hashable spans: prefix hashes, whitespace mask, where each string begins."""

    prefix: U64  # prefix[i]: hash sum of the first i code points
    is_space: NDArray[np.bool_]
    starts: I64  # where each string begins in the code array


_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)], dtype=np.bool_)


def _classify_space(codes: NDArray[np.uint32]) -> NDArray[np.bool_]:
    """Per code point: is it whitespace (as `str.split` sees it)."""
    ascii_ = codes < 128
    is_space = _ASCII_SPACE[np.where(ascii_, codes, 0)]
    if not ascii_.all():
        where = np.flatnonzero(~ascii_)
        distinct, inverse = np.unique(codes[where], return_inverse=True)
        is_space[where] = np.array([chr(int(c)).isspace() for c in distinct], dtype=np.bool_)[inverse]
    return is_space


def _encode(strings: Sequence[str]) -> _Codes:
    """Join strings with newlines (also before the first and after the last) into hashable code points."""
    joined = "\n" + "\n".join(strings) + "\n"
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    is_space = _classify_space(codes)
    normalized = np.where(is_space, np.uint32(_SPACE), codes).astype(np.uint64)
    up, _ = _powers(len(codes) + 1)
    prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
    np.cumsum(_mix(normalized) * up[: len(codes)], out=prefix[1:])
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings)) + 1
    starts = np.cumsum(lengths) - lengths + 1
    return _Codes(prefix, is_space, starts)


def _span_hashes(prefix: U64, start: I64, length: I64) -> U64:
    """Hash of each span `[start, start + length)`: the same value wherever the same characters occur."""
    _, down = _powers(len(prefix))
    raw = (prefix[start + length] - prefix[start]) * down[start]
    return _mix(raw + length.astype(np.uint64) * _LENGTH)


def _combine(left: U64, right: U64) -> U64:
    return _mix(left * _COMBINE + right)


def _runs(mask: NDArray[np.bool_]) -> tuple[I64, I64]:
    """Start and end (exclusive) of every maximal run of True in `mask` (whose first and last items are False)."""
    edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


def _hash_strings(strings: Sequence[str]) -> U64:
    """The span hash of each whole string (as the same characters would hash inside a text)."""
    if not strings:
        return np.zeros(0, dtype=np.uint64)
    codes = _encode(strings)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    return _span_hashes(codes.prefix, codes.starts, lengths)


def _vocab_word_hashes(vocab: Sequence[str]) -> U64:
    """Hash each word gram ("what", "<s> what", "what is") from its space-separated tokens, vectorized."""
    if not vocab:
        return np.zeros(0, dtype=np.uint64)
    codes = _encode(vocab)
    newline = np.zeros(len(codes.is_space), dtype=np.bool_)
    newline[codes.starts - 1] = True  # the newline before each gram
    start, end = _runs(~codes.is_space)
    gram = np.cumsum(newline)[start] - 1
    token_hashes = _span_hashes(codes.prefix, start, end - start)
    sizes = np.bincount(gram, minlength=len(vocab)).astype(np.int64)
    first = np.cumsum(sizes) - sizes
    out: U64 = token_hashes[first]
    for j in range(1, int(sizes.max(initial=1))):
        longer = sizes > j
        out[longer] = _combine(out[longer], token_hashes[first[longer] + j])
    return out


def hash_vocabulary(word_vocab: Sequence[str], char_vocab: Sequence[str]) -> HashedVocabulary:
    """The sorted gram hashes of a vocabulary (word grams, then character grams) and the feature id of each."""
    hashes = np.concatenate([_vocab_word_hashes(word_vocab), _hash_strings(char_vocab) ^ _CHAR_SALT])
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
