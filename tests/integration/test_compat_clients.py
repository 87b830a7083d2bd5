"""The compatible surfaces driven by their own clients against a real uvicorn on loopback: the official `openai`
client (embeddings, models), `requests` posting `{model, input}` to `/classify` as vLLM's example client does,
and curl for the categories and labels APIs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import requests
from tests.api.serving_fakes import Fixture, make_settings, reset_keyword_engine, serving
from tests.conftest import encoder_cache_dir

from labelwise.api import create_app
from labelwise.api.schemas.compat import (
    CategoriesError,
    LabelsClassificationResponse,
    TextClassificationResponse,
    VllmClassifyResponse,
)
from labelwise.encoder import DIMENSIONS, MODEL_ID, get_encoder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, classify key) of a server with the `intents` model, on SQLite."""
    reset_keyword_engine()
    data = tmp_path_factory.mktemp("compat") / "data"
    data.mkdir()
    settings = make_settings(data, f"sqlite:///{data / 'labelwise.db'}")
    fx = Fixture(settings)
    fx.publish("intents")
    key = fx.key("classify")
    try:
        with serving(create_app(settings)) as base:
            yield base, key
    finally:
        fx.close()


def test_openai_client_embeddings_and_models(server: tuple[str, str]) -> None:
    base, key = server
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    texts = ["the cat sat on the mat", "interest rates rose again"]
    # The client asks for base64 unless told otherwise, and decodes it: both paths are exercised.
    for kwargs in ({}, {"encoding_format": "float"}):
        answer = client.embeddings.create(model=MODEL_ID, input=texts, **kwargs)  # type: ignore[arg-type]
        got = np.asarray([d.embedding for d in answer.data], dtype=np.float32)
        assert got.shape == (2, DIMENSIONS)
        np.testing.assert_allclose(got, get_encoder(encoder_cache_dir()).encode(texts), atol=1e-5)
        assert answer.usage.prompt_tokens == sum(get_encoder(encoder_cache_dir()).count_tokens(texts))
    ids = [m.id for m in client.models.list()]
    assert ids == ["intents", MODEL_ID]
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert caught.value.param == "model"  # parsed from the OpenAI error shape
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()


def test_vllm_style_requests_client(server: tuple[str, str]) -> None:
    base, key = server
    headers = {"Authorization": f"Bearer {key}", "User-Agent": "Test Client"}
    payload = {"model": "intents", "input": ["my card has not arrived", "reset the password please"]}
    response = requests.post(base + "/classify", headers=headers, json=payload, timeout=10)
    assert response.status_code == 200, response.text
    answer = VllmClassifyResponse.model_validate(response.json())
    assert [d.label for d in answer.data] == ["card", "password"]
    assert all(d.num_classes == 3 and sum(d.probs) == pytest.approx(1.0) for d in answer.data)


def _curl(url: str, authorization: str, body: object) -> tuple[int, object]:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(
        [curl, "-s", "-w", "\n%{http_code}", "-X", "POST", url, "-H", f"Authorization: {authorization}",
         "-H", "Content-Type: application/json", "-d", json.dumps(body)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    text, _, status = out.stdout.rpartition("\n")
    return int(status), json.loads(text)


def test_curl_categories_and_labels(server: tuple[str, str]) -> None:
    base, key = server
    categories = [{"key": "food", "description": "cooking"}, {"key": "sport", "description": "matches"}]
    body = {"text": "a tasty soup recipe", "type": "exclusive", "categories": categories}
    status, answer = _curl(base + "/text/classification", f"Bearer {key}", body)
    assert status == 200
    assert (
        max((parsed := TextClassificationResponse.model_validate(answer)).data, key=parsed.data.__getitem__) == "food"
    )
    status, answer = _curl(base + "/text/classification", "Bearer wrong", body)
    assert (status, CategoriesError.model_validate(answer).code) == (401, "UNAUTHORIZED")
    status, answer = _curl(
        base + "/classification", f"Token {key}", {"text": "a tasty soup", "labels": ["food", "war"]}
    )
    assert status == 200
    assert LabelsClassificationResponse.model_validate(answer).labels[0] == "food"
