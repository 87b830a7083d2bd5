"""Find every vocabulary n-gram of a batch of texts in a few NumPy passes instead of one dictionary probe per gram.

`_tfidf.word_grams` and `_tfidf.char_grams` define the features; this module computes the same features for a
whole batch at once, which is what makes `/v1/batch` cheap. Each gram is identified by a 64-bit hash:

- The texts are lowered one by one, joined with a newline between them and at both ends, and turned into an array
  of code points; every whitespace character becomes a space (so a word's neighbours are its padding).
- With prefix sums of `mix(code[k]) * B**k` (arithmetic modulo 2**64), the hash of any span of the array costs
  two subtractions and a multiplication, for all spans at once.
- A word n-gram is hashed from its tokens' hashes, so "<s> what is" never has to be built as a string.
- The vocabulary is hashed by the same functions when the index is built; lookup is a sort and `searchsorted`.

Two different grams share a hash with probability about 2**-64 per pair; a collision would credit a gram's weight
to another gram, never raise. Batches are cut into chunks of at most `chunk_chars` characters so memory stays
bounded (about 100 bytes per character of a chunk).

The result equals the dictionary path (`TfidfFeaturizer.ids`) exactly; tests compare both on every shared dataset
and on awkward input (surrogates, NUL, non-ASCII whitespace and digits, characters whose lower case is longer).
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]

_BASE = 0x9E3779B97F4A7C15  # odd, so it has an inverse modulo 2**64
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
_LENGTH = np.uint64(0xD6E8FEB86659FD93)
_COMBINE = np.uint64(0xA0761D6478BD642F)
_CHAR_SALT = np.uint64(0xE7037ED1A0B428DB)  # keeps the word block and the character block apart
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_SPACE = 32
_CHUNK_CHARS = 1 << 17
_CACHE_WORDS = 1 << 16
_EMPTY: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
_EMPTY.flags.writeable = False


_TOKEN = re.compile(r"\w+")
# Sentence boundary markers cannot collide with tokens: `\w+` never matches "<" or ">".
_BOS, _EOS = "<s>", "</s>"
_SMALL_BATCH = 16  # up to this many texts, dictionaries beat the fixed cost of a hundred array operations


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
    """A chunk of texts as hashable spans: prefix hashes, word-character and whitespace masks, text starts."""

    prefix: U64  # prefix[i]: hash sum of the first i code points
    is_word: NDArray[np.bool_]
    is_space: NDArray[np.bool_]
    starts: I64  # where each text begins in the code array


_ASCII_WORD = np.array([chr(c).isalnum() or c == 95 for c in range(128)], dtype=np.bool_)
_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)], dtype=np.bool_)


def _classify(codes: NDArray[np.uint32]) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Per code point: is it a `\\w` character (as `re` defines it), is it whitespace (as `str.split` does)."""
    ascii_ = codes < 128
    clipped = np.where(ascii_, codes, 0)
    is_word = _ASCII_WORD[clipped]
    is_space = _ASCII_SPACE[clipped]
    if not ascii_.all():
        where = np.flatnonzero(~ascii_)
        distinct, inverse = np.unique(codes[where], return_inverse=True)
        chars = [chr(int(c)) for c in distinct]
        is_word[where] = np.array([c.isalnum() for c in chars], dtype=np.bool_)[inverse]
        is_space[where] = np.array([c.isspace() for c in chars], dtype=np.bool_)[inverse]
    return is_word, is_space


def _encode(lowered: Sequence[str]) -> _Codes:
    """Join lowered texts with newlines (also before the first and after the last) into hashable code points."""
    joined = "\n" + "\n".join(lowered) + "\n"
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    is_word, is_space = _classify(codes)
    normalized = np.where(is_space, np.uint32(_SPACE), codes).astype(np.uint64)
    up, _ = _powers(len(codes) + 1)
    prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
    np.cumsum(_mix(normalized) * up[: len(codes)], out=prefix[1:])
    lengths = np.fromiter(map(len, lowered), dtype=np.int64, count=len(lowered)) + 1
    starts = np.cumsum(lengths) - lengths + 1
    return _Codes(prefix, is_word, is_space, starts)


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


def _ranges(first: I64, counts: I64) -> tuple[I64, I64]:
    """`first[i], first[i] + 1, ...` (`counts[i]` values) for every i, and the i each value came from."""
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    offsets = np.cumsum(counts) - counts
    return first[owner] + (np.arange(int(counts.sum()), dtype=np.int64) - offsets[owner]), owner


def _hash_strings(strings: Sequence[str]) -> U64:
    """The span hash of each whole string (as the same characters would hash inside a text)."""
    if not strings:
        return np.zeros(0, dtype=np.uint64)
    codes = _encode(strings)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    return _span_hashes(codes.prefix, codes.starts, lengths)


def _word_gram_hashes(
    token_hashes: U64, token_text: I64, n_texts: int, max_n: int, bos: U64, eos: U64
) -> tuple[U64, I64]:
    """Hashes and texts of the word 1..max_n-grams (2+-grams over tokens padded with the boundary markers)."""
    hashes, texts = [token_hashes], [token_text]
    if max_n >= 2:
        per_text = np.bincount(token_text, minlength=n_texts).astype(np.int64)
        padded_len = per_text + 2
        offset = np.cumsum(padded_len) - padded_len
        padded = np.empty(int(padded_len.sum()), dtype=np.uint64)
        padded[offset] = bos
        padded[offset + padded_len - 1] = eos
        rank = np.arange(len(token_text), dtype=np.int64) - (np.cumsum(per_text) - per_text)[token_text]
        padded[offset[token_text] + 1 + rank] = token_hashes
        for n in range(2, max_n + 1):
            counts = np.maximum(padded_len - n + 1, 0)
            first, owner = _ranges(offset, counts)
            gram = padded[first]
            for j in range(1, n):
                gram = _combine(gram, padded[first + j])
            hashes.append(gram)
            texts.append(owner)
    return np.concatenate(hashes), np.concatenate(texts)


def _char_grams(prefix: U64, start: I64, end: I64, lo: int, hi: int) -> tuple[U64, I64]:
    """char_wb gram hashes of the words at `[start, end)` (each padded by the space or newline around it), and the
    word each came from."""
    padded_start, padded_len = start - 1, end - start + 2
    hashes, owners = [], []
    short = padded_len < lo  # shorter than the smallest n: the padded word itself, once
    if short.any():
        hashes.append(_span_hashes(prefix, padded_start[short], padded_len[short]))
        owners.append(np.flatnonzero(short).astype(np.int64))
    for n in range(lo, hi + 1):
        counts = np.maximum(padded_len - n + 1, 0)
        first, owner = _ranges(padded_start, counts)
        hashes.append(_span_hashes(prefix, first, np.full(len(first), n, dtype=np.int64)))
        owners.append(owner)
    return np.concatenate(hashes), np.concatenate(owners)


class _WordCache:
    """Character gram ids per word, held in arrays: an open-addressing table (linear probing) from a word's span
    hash to its ids' place in one pool.

    A batch looks up all its words at once and adds its new words at once, so no Python code runs per word. It
    holds up to `max_words` words; the batch after that starts from an empty table: frequent words come back at
    once, one-off words (ids, numbers) go. Callers hold `lock`: a lookup reads offsets into a pool that an addition
    may move.
    """

    def __init__(self, max_words: int) -> None:
        self.max_words = max(1, max_words)
        self.lock = threading.Lock()
        # At least four slots per word held; a batch may add up to a chunk's words beyond `max_words` first.
        bits = max(10, (4 * self.max_words - 1).bit_length())
        self._mask = (1 << bits) - 1
        self._shift = np.uint64(64 - bits)
        self._keys = np.zeros(1 << bits, dtype=np.uint64)
        self._used = np.zeros(1 << bits, dtype=np.bool_)
        self._first = np.zeros(1 << bits, dtype=np.int64)
        self._count = np.zeros(1 << bits, dtype=np.int64)
        self.pool: I64 = np.empty(1 << 12, dtype=np.int64)
        self._pooled = 0
        self.words = 0
        self._probes = 0  # the longest probe sequence any held word needs, minus one

    def clear_if_full(self) -> None:
        if self.words >= self.max_words:
            self._used[:] = False
            self._pooled = self.words = self._probes = 0

    def find(self, keys: U64) -> tuple[I64, I64, NDArray[np.bool_]]:
        """Pool offset and id count of each key, and whether it was found (offset and count 0 where not)."""
        first = np.zeros(len(keys), dtype=np.int64)
        count = np.zeros(len(keys), dtype=np.int64)
        found = np.zeros(len(keys), dtype=np.bool_)
        if self.words == 0:
            return first, count, found
        home = (keys >> self._shift).astype(np.int64)
        pending = np.arange(len(keys), dtype=np.int64)
        for probe in range(self._probes + 1):
            slot = (home[pending] + probe) & self._mask
            used = self._used[slot]
            match = used & (self._keys[slot] == keys[pending])
            hit, hit_slot = pending[match], slot[match]
            found[hit] = True
            first[hit] = self._first[hit_slot]
            count[hit] = self._count[hit_slot]
            pending = pending[used & ~match]  # an empty slot ends a key's search
            if len(pending) == 0:
                break
        return first, count, found

    def add(self, keys: U64, ids: I64, counts: I64) -> I64:
        """Hold `keys` (distinct, none held yet) with their ids (`counts[i]` of `ids` for key i, in key order);
        returns each key's pool offset."""
        end = self._pooled + len(ids)
        if end > len(self.pool):
            grown = np.empty(max(end, 2 * len(self.pool)), dtype=np.int64)
            grown[: self._pooled] = self.pool[: self._pooled]
            self.pool = grown
        self.pool[self._pooled : end] = ids
        first = self._pooled + np.cumsum(counts) - counts
        self._pooled = end
        home = (keys >> self._shift).astype(np.int64)
        pending = np.arange(len(keys), dtype=np.int64)
        probe = 0
        while len(pending):
            slot = (home[pending] + probe) & self._mask
            free = np.flatnonzero(~self._used[slot])
            taken, winner = np.unique(slot[free], return_index=True)  # one key per free slot
            placed = pending[free[winner]]
            self._used[taken] = True
            self._keys[taken] = keys[placed]
            self._first[taken] = first[placed]
            self._count[taken] = counts[placed]
            if len(placed):
                self._probes = max(self._probes, probe)
            left = np.ones(len(pending), dtype=np.bool_)
            left[free[winner]] = False
            pending = pending[left]
            probe += 1
        self.words += len(keys)
        return first


class NgramIndex:
    """Vocabulary of word and character n-grams as sorted 64-bit hashes; finds all grams of a batch at once."""

    def __init__(
        self,
        word_vocab: Sequence[str],
        char_vocab: Sequence[str],
        *,
        word_ngrams: int,
        char_ngrams: tuple[int, int],
        chunk_chars: int = _CHUNK_CHARS,
        cache_words: int = _CACHE_WORDS,
        small_batch: int = _SMALL_BATCH,
        hashed: HashedVocabulary | None = None,
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.chunk_chars = chunk_chars
        self.cache_words = cache_words
        self.small_batch = small_batch
        # Gram -> feature id (character grams after the word block), for small batches and explanations.
        self.word_index = {gram: i for i, gram in enumerate(word_vocab)}
        self.char_index = {gram: i for i, gram in enumerate(char_vocab, start=len(word_vocab))}
        self._recent: dict[str, I64] = {}  # the small-batch path's per-word cache, in two generations
        self._older: dict[str, I64] = {}
        self._words = _WordCache(cache_words)  # the batch path's
        self._bos, self._eos = _hash_strings(["<s>", "</s>"])
        n_grams = len(word_vocab) + len(char_vocab)
        if hashed is None or hashed.recipe != HASH_RECIPE or len(hashed.hashes) != n_grams:
            hashes = np.concatenate([self._vocab_word_hashes(word_vocab), _hash_strings(char_vocab) ^ _CHAR_SALT])
            order = np.argsort(hashes, kind="stable")
            hashed = HashedVocabulary(hashes[order], order.astype(np.int64))
        self.hashed = hashed
        self._hashes: U64 = hashed.hashes
        self._ids: I64 = hashed.ids
        # A directory over the sorted hashes by their top bits, with about four slots per entry: most lookups
        # find their only candidate with two reads, and never binary-search the whole vocabulary.
        self._shift = np.uint64(64 - max(8, int(n_grams * 4).bit_length()))
        slots = (1 << (64 - int(self._shift))) + 1
        sizes = np.bincount((self._hashes >> self._shift).astype(np.int64), minlength=slots - 1)
        self._directory: I64 = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._max_bucket = int(sizes.max(initial=0))

    def _vocab_word_hashes(self, vocab: Sequence[str]) -> U64:
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

    def lookup(self, texts: Sequence[str]) -> GramHits:
        """Row (index into `texts`) and feature id of every gram occurrence in the vocabulary, repeats kept."""
        if len(texts) <= self.small_batch:
            return self._lookup_small(texts)
        rows: list[I64] = []
        ids: list[I64] = []
        begin = 0
        while begin < len(texts):
            end, size = begin, 0
            while end < len(texts) and (end == begin or size + len(texts[end]) <= self.chunk_chars):
                size += len(texts[end]) + 1
                end += 1
            hit_rows, hit_ids = self._lookup_chunk(texts[begin:end])
            rows.append(hit_rows + begin)
            ids.append(hit_ids)
            begin = end
        if not rows:
            return GramHits(_EMPTY, _EMPTY)
        return GramHits(np.concatenate(rows), np.concatenate(ids))

    def _lookup_small(self, texts: Sequence[str]) -> GramHits:
        """A few texts: word grams through the dictionary, character grams through the per-word cache."""
        lowered = [t.lower() for t in texts]
        get = self.word_index.get
        found = [[j for g in word_grams(text, self.word_ngrams) if (j := get(g)) is not None] for text in lowered]
        word_rows = np.repeat(np.arange(len(texts), dtype=np.int64), [len(ids) for ids in found])
        word_ids = np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=len(word_rows))
        char_rows, char_ids = self._char_ids_by_word(lowered)
        return GramHits(np.concatenate([word_rows, char_rows]), np.concatenate([word_ids, char_ids]))

    def _char_ids_one_by_one(self, words: Sequence[str]) -> list[I64]:
        lo, hi = self.char_ngrams
        get = self.char_index.get
        return [
            np.array([j for g in char_grams(word, lo, hi) if (j := get(g)) is not None], dtype=np.int64)
            for word in words
        ]

    def _lookup_chunk(self, texts: Sequence[str]) -> tuple[I64, I64]:
        lowered = [t.lower() for t in texts]
        codes = _encode(lowered)
        word_hashes, word_rows = self._word_grams(codes, len(texts))
        word_owner, word_ids = self._find(word_hashes, word_rows)
        char_owner, char_ids = self._char_ids(codes)
        return np.concatenate([word_owner, char_owner]), np.concatenate([word_ids, char_ids])

    def _char_ids_by_word(self, lowered: Sequence[str]) -> tuple[I64, I64]:
        """Character gram ids of every word of a few texts, from a per-word cache: most words were seen before.

        Reading a cached array per word costs a fraction of finding its grams again. The cache has two
        generations: when the recent one is full it becomes the older one, and a word found there moves back, so
        frequent words stay and one-off words (ids, numbers) age out.
        """
        recent, older = self._recent, self._older
        pieces: list[I64] = []
        per_text: list[int] = []
        missing: dict[str, list[int]] = {}
        for text in lowered:
            words = text.split()
            per_text.append(len(words))
            for word in words:
                ids = recent.get(word)
                if ids is None:
                    ids = older.get(word)
                    if ids is None:
                        missing.setdefault(word, []).append(len(pieces))
                        ids = _EMPTY
                    else:
                        recent[word] = ids
                pieces.append(ids)
        if missing:
            words = list(missing)
            for word, ids in zip(words, self._char_ids_one_by_one(words), strict=True):
                recent[word] = ids
                for slot in missing[word]:
                    pieces[slot] = ids
            if len(recent) > self.cache_words // 2:
                self._older, self._recent = recent, {}
        if not pieces:
            return _EMPTY, _EMPTY
        sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        owners = np.repeat(np.arange(len(lowered), dtype=np.int64), per_text)
        return np.repeat(owners, sizes), np.concatenate(pieces)

    def _char_ids(self, codes: _Codes) -> tuple[I64, I64]:
        """Text (row) and character gram id of every gram of every whitespace-separated word of a chunk.

        Words are looked up in the word cache by their span hash; the new ones have their grams hashed and found
        together (one occurrence of each), and are added. Then one gather from the pool gives every word's ids.
        """
        start, end = _runs(~codes.is_space)
        if len(start) == 0:
            return _EMPTY, _EMPTY
        word_text = np.searchsorted(codes.starts, start, side="right") - 1
        keys = _span_hashes(codes.prefix, start, end - start)
        cache = self._words
        with cache.lock:
            cache.clear_if_full()
            first, count, found = cache.find(keys)
            if not found.all():
                missed = np.flatnonzero(~found)
                new, where, inverse = np.unique(keys[missed], return_index=True, return_inverse=True)
                chosen = missed[where]
                grams, owner = _char_grams(codes.prefix, start[chosen], end[chosen], *self.char_ngrams)
                owner, ids = self._find(grams ^ _CHAR_SALT, owner)
                order = np.argsort(owner, kind="stable")
                counts = np.bincount(owner, minlength=len(chosen)).astype(np.int64)
                added = cache.add(new, ids[order], counts)
                first[missed] = added[inverse]
                count[missed] = counts[inverse]
            flat, occurrence = _ranges(first, count)
            ids = cache.pool[flat]
        return word_text[occurrence], ids

    def _find(self, grams: U64, owners: I64) -> tuple[I64, I64]:
        """Owners and feature ids of the grams that are in the vocabulary (a bucket is tried slot by slot)."""
        bucket = (grams >> self._shift).astype(np.int64)
        position = self._directory[bucket]
        remaining = self._directory[bucket + 1] - position
        if len(self._hashes) == 0:
            return _EMPTY, _EMPTY
        found_owner: list[I64] = []
        found_id: list[I64] = []
        last = len(self._hashes) - 1
        for _ in range(self._max_bucket):
            live = remaining > 0
            if not live.all():
                grams, owners, position, remaining = grams[live], owners[live], position[live], remaining[live]
                if len(grams) == 0:
                    break
            hit = self._hashes[np.minimum(position, last)] == grams
            found_owner.append(owners[hit])
            found_id.append(self._ids[position[hit]])
            miss = ~hit
            grams, owners, position, remaining = grams[miss], owners[miss], position[miss] + 1, remaining[miss] - 1
        if not found_owner:
            return _EMPTY, _EMPTY
        return np.concatenate(found_owner), np.concatenate(found_id)

    def _word_grams(self, codes: _Codes, n_texts: int) -> tuple[U64, I64]:
        start, end = _runs(codes.is_word)
        token_hashes = _span_hashes(codes.prefix, start, end - start)
        token_text = np.searchsorted(codes.starts, start, side="right") - 1
        return _word_gram_hashes(token_hashes, token_text, n_texts, self.word_ngrams, self._bos, self._eos)
