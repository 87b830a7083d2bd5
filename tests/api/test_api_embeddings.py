"""`POST /v1/embeddings` and the embedding model in `GET /v1/models`: OpenAI's shapes, float and base64 vectors,
the limits, OpenAI-shaped errors (middleware refusals included), and 503 with Retry-After when the queue is full."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from labelwise.api.schemas.embeddings import EmbeddingResponse, OpenAIErrorResponse
from labelwise.api.schemas.models import ModelCard, ModelList
from labelwise.config import Settings
from labelwise.encoder import DIMENSIONS, MODEL_ID, get_encoder
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import Fixture, Running, started
from tests.conftest import encoder_cache_dir

pytestmark = pytest.mark.anyio


async def embed(running: Running, auth: dict[str, str], **body: Any) -> EmbeddingResponse:
    r = await running.client.post("/v1/embeddings", json=body, headers=auth)
    assert r.status_code == 200, r.text
    return EmbeddingResponse.model_validate(r.json())


async def test_vectors_equal_the_encoders_in_input_order(running: Running, auth: dict[str, str]) -> None:
    texts = ["a cat sat on the mat", "quarterly revenue grew", "a cat sat on the mat"]
    answer = await embed(running, auth, model=MODEL_ID, input=texts)
    assert (answer.object, answer.model) == ("list", MODEL_ID)
    assert [d.index for d in answer.data] == [0, 1, 2]
    got = np.asarray([d.embedding for d in answer.data], dtype=np.float32)
    assert got.shape == (3, DIMENSIONS)
    np.testing.assert_allclose(got, get_encoder(encoder_cache_dir()).encode(texts), atol=1e-5)
    tokens = sum(get_encoder(encoder_cache_dir()).count_tokens(texts))
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (tokens, tokens)


async def test_base64_is_little_endian_float32_and_alias_accepted(running: Running, auth: dict[str, str]) -> None:
    floats = await embed(running, auth, model=MODEL_ID, input="hello world")
    packed = await embed(running, auth, model="labelwise-embed", input="hello world", encoding_format="base64")
    assert packed.model == MODEL_ID
    assert isinstance(packed.data[0].embedding, str)
    decoded = np.frombuffer(base64.b64decode(packed.data[0].embedding), dtype="<f4")
    np.testing.assert_array_equal(decoded, np.asarray(floats.data[0].embedding, dtype=np.float32))
    same = await embed(running, auth, model=MODEL_ID, input="hello world", dimensions=DIMENSIONS)
    assert len(same.data[0].embedding) == DIMENSIONS


async def test_billed_as_embedding(running: Running, fx: Fixture) -> None:
    key, _ = fx.keys.create("funded", ["classify"], settings=KeyChanges(credits=100))
    r = await running.client.post(
        "/v1/embeddings", json={"model": MODEL_ID, "input": ["a", "b"]}, headers={"x-api-key": key}
    )
    assert r.status_code == 200
    price = running.app.container.settings.credit_prices["embedding"]
    assert r.headers["x-credits-cost"] == str(2 * price)


async def test_models_lists_the_embedding_model(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.get("/v1/models", headers=auth)
    listing = ModelList.model_validate(r.json())
    cards = [m for m in listing.data if isinstance(m, ModelCard)]
    assert [(c.id, c.object, c.owned_by) for c in cards] == [(MODEL_ID, "model", "labelwise")]
    assert next(m.id for m in listing.data) == "intents"  # the trained models are kept, first


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        ({"input": [f"t{i}" for i in range(513)]}, 400, "input", "513 items, the limit is 512"),
        ({"input": []}, 400, "input", "at least one text"),
        ({"input": ["ok", ""]}, 400, "input[1]", "must not be empty"),
        ({"input": "x" * 10_001}, 400, "input", "10,001 characters, the limit is 10,000"),
        ({"input": "a", "model": "text-embedding-3-small"}, 400, "model", "unknown embedding model"),
        ({"input": "a", "dimensions": 256}, 400, "dimensions", "384 only"),
        ({"input": "a", "encoding_format": "int8"}, 400, "encoding_format", "float"),
        ({"input": [1, 2, 3]}, 400, "input", "valid"),
    ],
)
async def test_errors_have_the_openai_shape(
    running: Running, auth: dict[str, str], body: dict[str, Any], status: int, param: str, fragment: str
) -> None:
    r = await running.client.post("/v1/embeddings", json={"model": MODEL_ID, **body}, headers=auth)
    assert r.status_code == status, r.text
    error = OpenAIErrorResponse.model_validate(r.json()).error
    assert error.type == "invalid_request_error"
    assert error.param is not None
    assert error.param.startswith(param)  # a union names its branch too: `input.str`
    assert fragment in error.message


async def test_middleware_refusals_use_the_openai_shape_too(running: Running) -> None:
    r = await running.client.post("/v1/embeddings", json={"model": MODEL_ID, "input": "a"})
    assert r.status_code == 401
    error = OpenAIErrorResponse.model_validate(r.json()).error
    assert (error.type, error.code) == ("authentication_error", "unauthorized")
    r = await running.client.post("/v1/embeddings", content=b"{not json", headers={"x-api-key": "nope"})
    assert r.status_code == 401


async def test_full_queue_is_503_with_retry_after(running: Running, auth: dict[str, str]) -> None:
    batcher = running.app.container.embeddings.batcher
    batcher._max_queue_texts = 2
    r = await running.client.post("/v1/embeddings", json={"model": MODEL_ID, "input": ["a", "b", "c"]}, headers=auth)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    error = OpenAIErrorResponse.model_validate(r.json()).error
    assert (error.type, error.code) == ("server_error", "overloaded")


async def test_the_encoder_loads_lazily_unless_preloaded(
    settings: Settings, fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append("load")
        return get_encoder(*args, **kwargs)

    monkeypatch.setattr("labelwise.encoder.runtime.get_encoder", counted)
    fx.publish("intents")
    async with started(settings) as app:
        assert (await app.client.get("/ready")).status_code == 200
        assert calls == []  # ready, and serving trained models, without the encoder
        key = {"x-api-key": fx.key("classify")}
        assert (await app.client.post("/v1/classify", json={"text": "card"}, headers=key)).status_code == 200
        assert calls == []
        r = await app.client.post("/v1/embeddings", json={"model": MODEL_ID, "input": "a"}, headers=key)
        assert r.status_code == 200
        assert calls
    calls.clear()
    async with started(settings.model_copy(update={"preload_encoder": True})):
        assert calls == ["load"]  # during startup, before the app was ready
