"""The C kernel finds exactly the grams the plain dictionary definition finds, and scores as the sparse product does."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from labelwise.engines import _kernel
from labelwise.engines._ngram_index import HASH_RECIPE, NgramIndex, hash_vocabulary
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
    "!?., ;:",  # no word characters at all
    "x",
    "a" * 3000,
    "averyveryveryverylongwordthatislongerthanthecachelimitofthekernel and more",
]


def hits_by_reference(featurizer: TfidfFeaturizer, texts: list[str]) -> Counter[tuple[int, int]]:
    return Counter((row, j) for row, text in enumerate(texts) for j in featurizer.ids(text))


def hits_of(index: NgramIndex, texts: list[str]) -> Counter[tuple[int, int]]:
    found = index.lookup(texts)
    return Counter(zip(found.rows.tolist(), found.ids.tolist(), strict=True))


def index_of(featurizer: TfidfFeaturizer, **options: Any) -> NgramIndex:
    config = featurizer.config
    return NgramIndex(
        featurizer.word_vocab,
        featurizer.char_vocab,
        word_ngrams=config.word_ngrams,
        char_ngrams=config.char_ngrams,
        **options,
    )


def reference_scores(featurizer: TfidfFeaturizer, texts: list[str], coef: np.ndarray[Any, Any]) -> Any:
    """The TF-IDF rows as a sparse matrix times the weights, in float64."""
    return np.asarray(featurizer.transform(texts) @ coef.astype(np.float64))


def test_the_kernel_extension_is_built() -> None:
    # No fallback: the linear engine needs the extension (`pip install -e .` builds it).
    assert _kernel.Index.__module__ == "labelwise.engines._kernel"
    assert Path(_kernel.__file__ or "").suffix in {".so", ".pyd"}


def test_the_hash_recipe_is_pinned() -> None:
    # Saved models hold these hashes (`gram_hashes.npy`): a change here needs a new HASH_RECIPE.
    assert HASH_RECIPE == "splitmix-poly64-v1"
    salt = 0xE7037ED1A0B428DB  # on character grams: unsalted, the hash of the same characters as one span
    spans = np.frombuffer(_kernel.vocabulary_hashes([], ["<s>", "what", "é\ud800", " ab ", "a\u3000b"]), np.uint64)
    assert [hex(int(h) ^ salt) for h in spans] == [
        "0x9f014425df0bb088",
        "0x5a651a1996f99a20",
        "0x5a01c176dfbb18af",
        "0xdc0bce38e7c1f622",
        hex(int(np.frombuffer(_kernel.vocabulary_hashes([], ["a b"]), np.uint64)[0]) ^ salt),  # any space is " "
    ]
    hashed = hash_vocabulary(["what is", "what"], [" ab "])
    assert [hex(int(h)) for h in hashed.hashes] == ["0x3b08b0e94775def9", "0x5a651a1996f99a20", "0x8d8daae11ec6b875"]
    assert hashed.ids.tolist() == [2, 1, 0]


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
    index = index_of(featurizer)
    assert hits_of(index, texts) == expected  # words found afresh
    assert hits_of(index, texts) == expected  # and from the word cache
    for row, text in enumerate(texts):  # one by one
        found = Counter({(row, j): n for (_, j), n in hits_of(index, [text]).items()})
        assert found == Counter({key: n for key, n in expected.items() if key[0] == row}), text


_PROPERTY_FEATURIZER = TfidfFeaturizer.fit(
    [*AWKWARD, "the cat sat on the mat", "a b c", "ab ba aab abba"], TfidfConfig(char_min_df=1)
)
_PROPERTY_INDEX = index_of(_PROPERTY_FEATURIZER, cache_words=8)  # small: the cache also fills and empties


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        # Mostly characters the vocabulary knows, some that lower to two, whitespace of every kind, surrogates.
        st.text(alphabet=st.sampled_from(list("abcthe mİΣß_ \t\n\u00a0\u3000\u2028\x00😀²٣.?\ud800")), max_size=60),
        max_size=6,
    )
)
def test_any_text_gives_the_same_grams_as_the_definition(texts: list[str]) -> None:
    assert hits_of(_PROPERTY_INDEX, texts) == hits_by_reference(_PROPERTY_FEATURIZER, texts)


@pytest.mark.parametrize("dataset", ["banking77", "sst2", "emotion", "sms_spam", "goemotions", "trec", "clinc150"])
def test_real_datasets_give_the_same_grams_as_the_definition(shared_data: Path, dataset: str) -> None:
    lines = (shared_data / dataset / "train.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"] for line in lines if line.strip()][:2500]
    featurizer = TfidfFeaturizer.fit(texts[:1500], TfidfConfig())
    unseen = texts[1500:]
    expected = hits_by_reference(featurizer, unseen)
    index = index_of(featurizer)
    assert hits_of(index, unseen) == expected
    assert hits_of(index, unseen) == expected
    coef = np.random.default_rng(3).standard_normal((featurizer.n_features, 5)).astype(np.float32)
    np.testing.assert_allclose(featurizer.scores(unseen, coef), reference_scores(featurizer, unseen, coef), atol=1e-9)


def test_a_tiny_word_cache_fills_empties_and_changes_nothing() -> None:
    featurizer = TfidfFeaturizer.fit([*AWKWARD, "the cat sat on the mat"], TfidfConfig(char_min_df=1))
    texts = [*AWKWARD, "the cat sat on the mat"] * 3
    expected = hits_by_reference(featurizer, texts)
    index = index_of(featurizer, cache_words=3)
    kernel = index.kernel
    assert kernel.cached_words == 0
    assert hits_of(index, texts) == expected
    assert 1 <= kernel.cached_words <= 3  # emptied whenever a fourth word came
    assert hits_of(index, texts) == expected
    kernel.clear_cache()
    assert kernel.cached_words == 0
    assert hits_of(index, texts) == expected


def test_the_word_cache_holds_each_word_once_and_skips_long_words() -> None:
    featurizer = TfidfFeaturizer.fit(["the cat sat on the mat"], TfidfConfig(char_min_df=1))
    kernel = index_of(featurizer).kernel
    kernel.hits(["the cat sat on the mat", "the cat", "x" * 49])
    assert kernel.cached_words == 5  # the, cat, sat, on, mat; a word of 49 characters is not held
    kernel.hits(["x" * 48])
    assert kernel.cached_words == 6


def test_scores_equal_the_sparse_product() -> None:
    corpus = ["the cat sat", "the dog sat down", "a cat and a dog", "dogs dogs dogs", *AWKWARD]
    featurizer = TfidfFeaturizer.fit(corpus, TfidfConfig(char_min_df=1))
    texts = ["the cat sat on the dog", "unknown", "dogs and cats", "", "!!", "dogs dogs dogs dogs", *AWKWARD]
    coef = np.random.default_rng(0).standard_normal((featurizer.n_features, 19)).astype(np.float32)
    expected = reference_scores(featurizer, texts, coef)
    got = featurizer.scores(texts, coef)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    # The float32 product the engine used before the kernel is itself off by float32 rounding (here 2.6e-6; up to
    # 4.2e-6 on banking77's test texts with a trained model): the kernel sums in float64.
    parts = featurizer.rows(texts, np.float32)
    matrix = sparse.csr_matrix((parts.values, parts.indices, parts.indptr), shape=(len(texts), featurizer.n_features))
    np.testing.assert_allclose(got, np.asarray(matrix @ coef, dtype=np.float64), rtol=0, atol=1e-5)
    # A text scores the same, to the bit, alone and in a batch.
    np.testing.assert_array_equal(np.vstack([featurizer.scores([t], coef) for t in texts]), got)
    assert featurizer.scores([], coef).shape == (0, 19)


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
    assert empty.scores(["some text"], np.zeros(0), np.zeros((0, 3), dtype=np.float32)).tolist() == [[0.0] * 3]
    featurizer = TfidfFeaturizer.fit(["the cat"], TfidfConfig(char_min_df=1))
    assert len(featurizer._index.lookup([]).rows) == 0


def test_threads_sharing_an_index_get_what_one_thread_gets() -> None:
    corpus = [f"word{i % 97} other{i % 13} the cat sat {i}" for i in range(300)]
    featurizer = TfidfFeaturizer.fit(corpus, TfidfConfig())
    coef = np.random.default_rng(1).standard_normal((featurizer.n_features, 7)).astype(np.float32)
    batches = [[f"{corpus[(b * 7 + i) % 300]} new{b}x{i}" for i in range(1 + b % 20)] for b in range(400)]
    expected = [reference_scores(featurizer, batch, coef) for batch in batches]
    shared = index_of(featurizer, cache_words=50)  # small: the cache empties often while the threads run
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda batch: shared.scores(batch, featurizer.idf, coef), batches))
        hits = list(pool.map(lambda batch: hits_of(shared, batch), batches))
    for batch, a, b, found in zip(batches, got, expected, hits, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
        assert found == hits_by_reference(featurizer, batch)


def _kernel_index(featurizer: TfidfFeaturizer) -> _kernel.Index:
    return index_of(featurizer).kernel


def test_bad_arguments_raise_instead_of_crashing() -> None:
    featurizer = TfidfFeaturizer.fit(["the cat sat", "a dog"], TfidfConfig(char_min_df=1))
    kernel = _kernel_index(featurizer)
    n = featurizer.n_features
    idf, coef, out = featurizer.idf, np.ones((n, 3), dtype=np.float32), np.zeros((2, 3))
    texts = ["the cat", "a dog"]
    kernel.scores(texts, idf, coef, out)  # the good call
    bad: list[tuple[type[Exception], dict[str, Any]]] = [
        (TypeError, {"idf": idf.astype(np.float32)}),
        (ValueError, {"idf": idf[:-1]}),
        (TypeError, {"idf": idf[::2]}),  # not contiguous
        (TypeError, {"idf": "not an array"}),
        (TypeError, {"coef": coef.astype(np.float64)}),
        (TypeError, {"coef": np.asfortranarray(np.ones((n, 3), dtype=np.float32))}),
        (ValueError, {"coef": np.ones(n * 3, dtype=np.float32)}),
        (ValueError, {"coef": np.ones((n + 1, 3), dtype=np.float32)}),
        (ValueError, {"out": np.zeros((3, 3))}),
        (ValueError, {"out": np.zeros((2, 4))}),
        (TypeError, {"out": np.zeros((2, 3), dtype=np.float32)}),
        (TypeError, {"out": np.zeros((2, 3)).view(np.int64)}),
        (TypeError, {"out": np.frombuffer(bytes(48), dtype=np.float64).reshape(2, 3)}),  # read-only
        (TypeError, {"texts": ["fine", b"bytes"]}),
        (TypeError, {"texts": 42}),
    ]
    for error, change in bad:
        args = {"texts": texts, "idf": idf, "coef": coef, "out": out, **change}
        with pytest.raises(error):
            kernel.scores(**args)
    with pytest.raises(TypeError):
        kernel.hits(["fine", None])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        kernel.hits(None)  # type: ignore[arg-type]
    out[:] = 0.0
    kernel.scores(texts, idf, coef, out)  # still fine afterwards
    np.testing.assert_allclose(out, featurizer.scores(texts, coef))


def test_a_bad_vocabulary_is_refused() -> None:
    hashes = np.array([1, 2, 3], dtype=np.uint64)
    ids = np.array([2, 0, 1], dtype=np.int64)
    _kernel.Index(hashes, ids, 1, 2, (2, 5), 10)
    refused: list[tuple[type[Exception], tuple[Any, ...]]] = [
        (ValueError, (hashes[::-1].copy(), ids, 1, 2, (2, 5), 10)),  # not sorted
        (ValueError, (hashes, np.array([0, 0, 1], dtype=np.int64), 1, 2, (2, 5), 10)),  # not a permutation
        (ValueError, (hashes, np.array([0, 1, 3], dtype=np.int64), 1, 2, (2, 5), 10)),
        (ValueError, (hashes, ids[:2], 1, 2, (2, 5), 10)),
        (ValueError, (hashes, ids, 4, 2, (2, 5), 10)),  # more word grams than grams
        (ValueError, (hashes, ids, 1, 0, (2, 5), 10)),
        (ValueError, (hashes, ids, 1, 2, (3, 2), 10)),
        (ValueError, (hashes, ids, 1, 2, (0, 2), 10)),
        (ValueError, (hashes, ids, 1, 2, (2, 5), 0)),
        (TypeError, (hashes.astype(np.int64), ids, 1, 2, (2, 5), 10)),
        (TypeError, (hashes, ids.astype(np.int32), 1, 2, (2, 5), 10)),
        (TypeError, (list(hashes), ids, 1, 2, (2, 5), 10)),
    ]
    for error, args in refused:
        with pytest.raises(error):
            _kernel.Index(*args)
    index = _kernel.Index.__new__(_kernel.Index)  # never initialized
    with pytest.raises(RuntimeError):
        index.hits(["text"])
    with pytest.raises(ValueError):
        index.__init__(hashes[::-1].copy(), ids, 1, 2, (2, 5), 10)  # type: ignore[misc]
    with pytest.raises(RuntimeError):
        index.hits(["text"])  # a failed __init__ leaves it unusable, not half-built
    with pytest.raises(RuntimeError):
        index.scores(["text"], np.zeros(0), np.zeros((0, 1), dtype=np.float32), np.zeros((1, 1)))
    ready = _kernel.Index(hashes, ids, 1, 2, (2, 5), 10)
    with pytest.raises(RuntimeError):
        ready.__init__(hashes, ids, 1, 2, (2, 5), 10)  # type: ignore[misc]
