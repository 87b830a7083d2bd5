"""The sentence encoder: shape, normalization, determinism, windows, batching and the derived-model cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import encoder_cache_dir

from labelwise.encoder import DIMENSIONS, MODEL_ID, Encoder, LazyEncoder, get_encoder
from labelwise.encoder import files as encoder_files
from labelwise.errors import ConfigError, InvalidRequest

SENTENCES = [
    "The movie was a delight from start to finish.",
    "I want to cancel my card, it was stolen yesterday.",
    "What is the capital of Australia?",
    "a",
    "Terrible service, the package never arrived and nobody answers the phone.",
    "¿Dónde está la estación de tren? 🚆",
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return get_encoder(encoder_cache_dir())


def test_vectors_have_the_model_shape_and_unit_norm(encoder: Encoder) -> None:
    vectors = encoder.encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), DIMENSIONS)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert encoder.model_id == MODEL_ID == "all-MiniLM-L6-v2"
    assert len(encoder.sha256) == 64


def test_encoding_is_deterministic_and_meaningful(encoder: Encoder) -> None:
    first = encoder.encode(SENTENCES)
    np.testing.assert_array_equal(first, encoder.encode(SENTENCES))
    # A paraphrase is closer than an unrelated sentence: the model really runs, not a hash.
    a, b, c = encoder.encode(["My card was stolen.", "Someone took my bank card.", "The film was wonderful."])
    assert float(a @ b) > float(a @ c) + 0.2


def test_a_batch_equals_the_texts_encoded_one_by_one(encoder: Encoder) -> None:
    batch = encoder.encode(SENTENCES, batch_size=4)
    one_by_one = np.stack([encoder.encode([text])[0] for text in SENTENCES])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-5)


def test_how_a_batch_is_cut_into_calls_never_changes_a_vector(encoder: Encoder) -> None:
    texts = [*SENTENCES, *(f"{s} {i}" for i, s in enumerate(SENTENCES * 3))]
    tiny_calls = Encoder(encoder_cache_dir(), max_call_tokens=16, threads=3)
    try:
        assert len(tiny_calls.preprocess(texts, 0, "mean", 64)) > len(encoder.preprocess(texts, 0, "mean", 64))
        np.testing.assert_array_equal(tiny_calls.encode(texts), encoder.encode(texts))
    finally:
        tiny_calls.close()


def test_the_derived_graph_runs_int8_products_and_fused_attention(encoder: Encoder) -> None:
    import onnx

    graph = onnx.load(str(encoder.files.model)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("MultiHeadAttention") == 6
    assert ops.count("MatMulIntegerToFloat") == 6 * 6  # Q, K, V, attention output, two feed-forward
    assert "MatMul" not in ops  # no fp32 product left
    assert {i.name for i in graph.input} == {"input_ids", "attention_mask"}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=80), min_size=2, max_size=6))
def test_any_batch_of_unicode_texts_equals_its_texts_alone(encoder: Encoder, texts: list[str]) -> None:
    batch = encoder.encode(texts)
    assert np.isfinite(batch).all()
    np.testing.assert_array_equal(batch, np.stack([encoder.encode([text])[0] for text in texts]))


def test_empty_input_gives_an_empty_matrix(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, DIMENSIONS)


def test_a_long_text_is_split_into_windows_and_combined() -> None:
    encoder = get_encoder(encoder_cache_dir(), max_tokens=32)  # short windows keep the test fast
    long_text = " ".join(SENTENCES * 2)
    tokens = encoder.count_tokens([long_text])[0]
    assert tokens > 2 * encoder.max_tokens
    mean, maximum, truncated = (encoder.encode([long_text], long_text=how)[0] for how in ("mean", "max", "truncate"))
    for vector in (mean, maximum, truncated):
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert not np.allclose(mean, truncated, atol=1e-3)
    assert not np.allclose(mean, maximum, atol=1e-3)
    # Truncating keeps the first window: [CLS], the first max_tokens - 2 tokens, [SEP].
    first_window = [*encoder.tokenize([long_text])[0][: encoder.max_tokens - 1], 102]  # 102 = [SEP]
    batches = encoder.preprocess([long_text], 0, "truncate", 8)
    assert batches[0].input_ids[0].tolist() == first_window
    windows = encoder.preprocess([long_text], 0, "mean", 8)
    assert sum(b.rows for b in windows) == -(-(tokens - 2 - encoder.window_overlap) // (30 - encoder.window_overlap))


def test_count_tokens_includes_special_tokens(encoder: Encoder) -> None:
    assert encoder.count_tokens(["hello world", ""]) == [4, 2]


def test_unknown_long_text_option_is_refused(encoder: Encoder) -> None:
    with pytest.raises(InvalidRequest, match="long_text"):
        encoder.encode(["x"], long_text="median")  # type: ignore[arg-type]


def test_cosine_to_the_shipped_model_is_high(encoder: Encoder) -> None:
    import onnxruntime as ort

    from labelwise.encoder.windows import mean_pool, pad_windows

    path, _ = encoder_files.shipped_model()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = encoder.tokenize(SENTENCES)
    batch = pad_windows(ids, list(range(len(ids))))
    feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
    shipped = mean_pool(session.run(None, feeds)[0], batch.attention_mask)
    cosine = np.sum(shipped * encoder.encode(SENTENCES), axis=1)
    assert cosine.min() > 0.98, cosine


def test_the_derived_model_is_cached_verified_and_reused(tmp_path: Path) -> None:
    first = encoder_files.prepare(tmp_path)
    stamp = first.model.stat().st_mtime_ns
    again = encoder_files.prepare(tmp_path)
    assert again == first
    assert first.model.stat().st_mtime_ns == stamp  # reused, not derived again
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".derive-") or p.name.startswith(".tmp-")]
    # A corrupted file fails its sha256 check and is derived again.
    first.model.write_bytes(b"garbage")
    repaired = encoder_files.prepare(tmp_path)
    manifest = json.loads((tmp_path / "all-MiniLM-L6-v2-int8-rowwise.json").read_text())
    assert encoder_files.sha256_of(repaired.model) == manifest["sha256"]
    assert repaired.model.stat().st_size > 1_000_000


def test_bad_settings_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_tokens"):
        Encoder(tmp_path, max_tokens=1024)
    with pytest.raises(ConfigError, match="window_overlap"):
        Encoder(tmp_path, max_tokens=64, window_overlap=40)


def test_get_encoder_shares_one_instance() -> None:
    assert get_encoder(encoder_cache_dir()) is get_encoder(encoder_cache_dir())


def test_a_lazy_encoder_loads_the_directory_it_is_given_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment names another data directory: the encoder is given its directory and reads no setting.
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path / "elsewhere"))
    lazy = LazyEncoder(encoder_cache_dir())
    assert (lazy.model_id, lazy.dimensions) == (MODEL_ID, DIMENSIONS)
    assert lazy._encoder is None  # nothing loaded yet
    vectors = lazy.encode(["a card payment"])
    assert lazy.encoder() is get_encoder(encoder_cache_dir())
    assert lazy.sha256 == get_encoder(encoder_cache_dir()).sha256
    np.testing.assert_array_equal(vectors, get_encoder(encoder_cache_dir()).encode(["a card payment"]))
    assert not (tmp_path / "elsewhere").exists()
