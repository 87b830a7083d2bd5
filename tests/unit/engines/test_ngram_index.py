"""The vectorized n-gram lookup finds exactly the grams the plain dictionary definition finds."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from labelwise.engines._ngram_index import NgramIndex, _WordCache
from labelwise.engines._tfidf import TfidfConfig, TfidfFeaturizer

AWKWARD = [
    "",
    " ",
    "\t\n\r\x0b\x0c",
    "a\ud800b lone \udfff surrogates",
    "nul\x00inside and\x00 out",
    "İstanbul ΟΔΟΣ Σ ß ǅ",  # lower() of İ is two characters; final sigma
    "naïve café\u00a0no-break\u3000ideographic\u2028line",
    "² ³ ½ ٣ _under_ __ a_b",  # digits that are not decimal, underscores are word characters
    "emoji 😀 inside😀words 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "what is this? what is <s> </s> s",
    "Repeat repeat REPEAT repeat",
    "x",
    "a" * 3000,
]


def hits_by_reference(featurizer: TfidfFeaturizer, texts: list[str]) -> Counter[tuple[int, int]]:
    return Counter((row, j) for row, text in enumerate(texts) for j in featurizer.ids(text))


def hits_of(index: NgramIndex, texts: list[str]) -> Counter[tuple[int, int]]:
    found = index.lookup(texts)
    return Counter(zip(found.rows.tolist(), found.ids.tolist(), strict=True))


def both_paths(featurizer: TfidfFeaturizer, texts: list[str]) -> list[Counter[tuple[int, int]]]:
    """What the vectorized path and the small-batch (dictionary) path find for the same texts."""
    return [hits_of(index_of(featurizer, small_batch=size), texts) for size in (0, len(texts))]


def index_of(featurizer: TfidfFeaturizer, **options: int) -> NgramIndex:
    config = featurizer.config
    return NgramIndex(
        featurizer.word_vocab,
        featurizer.char_vocab,
        word_ngrams=config.word_ngrams,
        char_ngrams=config.char_ngrams,
        **options,
    )


@pytest.mark.parametrize(
    "config",
    [
        TfidfConfig(char_min_df=1),
        TfidfConfig(word_ngrams=1, char_ngrams=(1, 3), char_min_df=1),
        TfidfConfig(word_ngrams=3, char_ngrams=(4, 6), char_min_df=1),  # " a " is shorter than 4: kept whole
    ],
    ids=["default", "unigrams", "trigrams"],
)
def test_awkward_text_gives_the_same_grams_as_the_definition(config: TfidfConfig) -> None:
    featurizer = TfidfFeaturizer.fit([*AWKWARD, "a b c", "the cat sat"], config)
    texts = [*AWKWARD, "unseen words only", "the cat sat on the mat", "A B C"]
    expected = hits_by_reference(featurizer, texts)
    assert sum(expected.values()) > 100
    assert both_paths(featurizer, texts) == [expected, expected]


@pytest.mark.parametrize("dataset", ["banking77", "sst2", "emotion", "sms_spam", "goemotions", "trec", "clinc150"])
def test_real_datasets_give_the_same_grams_as_the_definition(shared_data: Path, dataset: str) -> None:
    lines = (shared_data / dataset / "train.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()][:2500]
    featurizer = TfidfFeaturizer.fit(texts[:1500], TfidfConfig())
    unseen = texts[1500:]
    expected = hits_by_reference(featurizer, unseen)
    assert both_paths(featurizer, unseen) == [expected, expected]


def test_small_chunks_and_a_tiny_word_cache_change_nothing() -> None:
    featurizer = TfidfFeaturizer.fit([*AWKWARD, "the cat sat on the mat"], TfidfConfig(char_min_df=1))
    texts = [*AWKWARD, "the cat sat on the mat"] * 3
    expected = hits_by_reference(featurizer, texts)
    index = index_of(featurizer, chunk_chars=16, cache_words=3, small_batch=0)
    assert hits_of(index, texts) == expected
    assert hits_of(index, texts) == expected  # again, now partly from the cache
    one_by_one = index_of(featurizer, cache_words=3)
    for row, text in enumerate(texts):
        found = Counter({(row, j): n for (_, j), n in hits_of(one_by_one, [text]).items()})
        assert found == Counter({key: n for key, n in expected.items() if key[0] == row}), text
    distinct = len(set(" ".join(texts).lower().split()))
    assert len(one_by_one._recent) + len(one_by_one._older) <= 2 * distinct
    assert index._words.words <= 3 + distinct  # emptied once full: at most one chunk's new words past the limit


def test_word_cache_finds_what_it_holds_through_collisions_and_forgets_when_full() -> None:
    cache = _WordCache(max_words=64)
    home_bits = 64 - int(cache._shift)
    # Keys that share a home slot (same top bits) must probe past each other, also within one addition.
    same_home = np.array([(5 << (64 - home_bits)) | i for i in range(1, 9)], dtype=np.uint64)
    others = np.array([(9 << (64 - home_bits)) | 1, (6 << (64 - home_bits)) | 1], dtype=np.uint64)
    keys = np.concatenate([same_home, others])
    counts = np.arange(1, len(keys) + 1, dtype=np.int64)
    ids = np.arange(int(counts.sum()), dtype=np.int64)
    cache.add(keys, ids, counts)
    first, count, found = cache.find(
        np.concatenate([keys[::-1], np.array([12345, (5 << (64 - home_bits)) | 99], dtype=np.uint64)])
    )
    assert found.tolist() == [True] * len(keys) + [False, False]
    assert count[: len(keys)].tolist() == counts[::-1].tolist()
    for key_index, (start, size) in enumerate(zip(first[: len(keys)][::-1], count[: len(keys)][::-1], strict=True)):
        expected = ids[int(counts[:key_index].sum()) : int(counts[: key_index + 1].sum())]
        assert cache.pool[start : start + size].tolist() == expected.tolist()
    cache.clear_if_full()
    assert cache.find(keys)[2].all()  # 10 of 64 words: kept
    more = np.arange(1000, 1060, dtype=np.uint64)
    cache.add(more, np.zeros(0, dtype=np.int64), np.zeros(60, dtype=np.int64))
    assert cache.words == 70
    cache.clear_if_full()
    assert cache.words == 0
    assert not cache.find(keys)[2].any()


def test_rows_are_the_tfidf_of_the_reference_ids() -> None:
    corpus = ["the cat sat", "the dog sat down", "a cat and a dog", "dogs dogs dogs"]
    featurizer = TfidfFeaturizer.fit(corpus, TfidfConfig(char_min_df=1))
    texts = ["the cat sat on the dog", "unknown", "dogs and cats"]
    matrix = featurizer.transform(texts).toarray()
    for row, text in enumerate(texts):
        counts = Counter(featurizer.ids(text))
        expected = np.zeros(featurizer.n_features)
        for j, c in counts.items():
            expected[j] = (1.0 + np.log(c)) * featurizer.idf[j]
        words = np.arange(featurizer.n_features) < len(featurizer.word_vocab)
        for block in (words, ~words):
            norm = np.linalg.norm(expected[block])
            if norm:
                expected[block] /= norm
        np.testing.assert_allclose(matrix[row], expected, rtol=1e-12, atol=1e-12)


def test_an_empty_vocabulary_or_batch_finds_nothing() -> None:
    empty = NgramIndex([], [], word_ngrams=2, char_ngrams=(2, 5))
    assert len(empty.lookup(["some text"]).ids) == 0
    featurizer = TfidfFeaturizer.fit(["the cat"], TfidfConfig(char_min_df=1))
    assert len(featurizer._index.lookup([]).rows) == 0
