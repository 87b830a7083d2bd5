"""vLLM's own online tests of the classify endpoint (tests/entrypoints/pooling/classify/test_online.py in
vllm-project/vllm), ported to Labelwise: every case that applies to a served classification model, against a real
`labelwise serve` (its default workers) serving a linear model trained on SMS spam (two labels, like vLLM's test
model). Not ported: token-id inputs and chat `messages` (the engines have no tokenizer or chat template; token ids
are refused 400 naming `input`), and `/tokenize`. Tokens here are whitespace-separated words; the model's window
is the most words a text of `max_text_chars` (10,000 by default) can hold: 5,000.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from tests.api.serving_fakes import Fixture, make_settings
from tests.integration.real_server import labelwise_serve

from labelwise.api.schemas.compat import VllmClassifyResponse, VllmPoolingResponse
from labelwise.api.schemas.embeddings import OpenAIErrorResponse
from labelwise.domain import LabeledTexts
from labelwise.engines.linear import LinearEngine

MODEL = "spam"
TEXT = "This product was excellent and exceeded my expectations"
WINDOW = 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client (with a classify key) of a real server with the `spam` model, on SQLite."""
    from tests.conftest import shared_data_dir

    path = shared_data_dir() / "sms_spam" / "train.jsonl"
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is absent (set LABELWISE_SHARED_DATA)")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:600]]
    train = LabeledTexts(texts=[r["text"] for r in rows], labels=[(r["label"],) for r in rows])
    data = tmp_path_factory.mktemp("vllm") / "data"
    data.mkdir()
    fixture = Fixture(make_settings(data, f"sqlite:///{data / 'labelwise.db'}"))
    fixture.publish(MODEL, LinearEngine(c_grid=(1.0,)).fit(train, train))
    key = fixture.key("classify")
    fixture.close()
    env = {"LABELWISE_DATA_DIR": str(data), "LABELWISE_LOG_LEVEL": "WARNING"}
    with (
        labelwise_serve(env) as running,
        httpx.Client(base_url=running.base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client,
    ):
        yield client


def classify(client: httpx.Client, path: str = "/classify", **body: Any) -> VllmClassifyResponse:
    response = client.post(path, json={"model": MODEL, **body})
    assert response.status_code == 200, response.text
    return VllmClassifyResponse.model_validate(response.json())


def refused(client: httpx.Client, path: str, body: dict[str, Any]) -> OpenAIErrorResponse:
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    error = OpenAIErrorResponse.model_validate(response.json())
    assert (error.error.type, error.error.code) == ("BadRequestError", 400)
    return error


def test_completion_request(server: httpx.Client) -> None:
    output = classify(server, input=TEXT)
    assert (output.object, output.model, len(output.data)) == ("list", MODEL, 1)
    assert output.data[0].label in ("ham", "spam")
    assert len(output.data[0].probs) == output.data[0].num_classes == 2
    token_ids = refused(server, "/classify", {"model": MODEL, "input": [1986, 1985, 572]}).error
    assert (token_ids.param, token_ids.message) == (
        "input",
        "input: value error, token ids are not accepted (the engines have no tokenizer): send text",
    )


def test_completion_request_batched(server: httpx.Client) -> None:
    output = classify(server, input=[TEXT] * 10)
    assert [item.index for item in output.data] == list(range(10))
    for item in output.data:
        assert len(item.probs) == item.num_classes
        assert item.label in ("ham", "spam")
        assert item.probs == output.data[0].probs


def test_empty_input_error(server: httpx.Client) -> None:
    assert refused(server, "/classify", {"model": MODEL, "input": ""}).error.param == "input"
    assert refused(server, "/classify", {"model": MODEL, "input": []}).error.param == "input"


def test_truncate_prompt_tokens(server: httpx.Client) -> None:
    long_text = "hello " * 600
    output = classify(server, input=long_text, truncate_prompt_tokens=5)
    assert (len(output.data), output.data[0].index) == (1, 0)
    assert output.usage.prompt_tokens == output.usage.total_tokens == 5
    assert classify(server, input=long_text, truncate_prompt_tokens=-1).usage.prompt_tokens == 600
    error = refused(server, "/classify", {"model": MODEL, "input": "test", "truncate_prompt_tokens": WINDOW + 1})
    assert "truncate_prompt_tokens" in error.error.message
    assert f"window of {WINDOW:,} tokens" in error.error.message
    assert error.error.param == "truncate_prompt_tokens"
    assert classify(server, input="test", truncate_prompt_tokens=WINDOW).usage.prompt_tokens == 1


def test_add_special_tokens(server: httpx.Client) -> None:
    without = classify(server, input=TEXT, add_special_tokens=False)
    with_them = classify(server, input=TEXT, add_special_tokens=True)
    assert without.data[0].probs == with_them.data[0].probs
    assert without.usage == with_them.usage


def test_invocations_completion_request(server: httpx.Client) -> None:
    body = {"model": MODEL, "input": TEXT}
    classified = server.post("/classify", json=body).json()
    invoked = server.post("/invocations", json=body).json()
    assert classified.keys() == invoked.keys()
    for one, other in zip(classified["data"], invoked["data"], strict=True):
        assert one.keys() == other.keys()
        assert one["probs"] == pytest.approx(other["probs"], rel=0.01)
    assert server.post("/invocations", json={"model": MODEL, "input": []}).json()["error"]["param"] == "input"


def test_use_activation(server: httpx.Client) -> None:
    def outputs(use_activation: bool | None) -> np.ndarray:
        return np.asarray([item.probs for item in classify(server, input=TEXT, use_activation=use_activation).data])

    default, with_activation, without = outputs(None), outputs(True), outputs(False)
    assert np.allclose(default, with_activation, atol=1e-2), "the default applies the activation"
    assert not np.allclose(with_activation, without, atol=1e-2), "use_activation false skips it"
    softmax = np.exp(without) / np.exp(without).sum(axis=-1, keepdims=True)
    assert np.allclose(softmax, with_activation, atol=1e-2), "the activation of the raw scores is the default"
    # Here the raw scores are the log-probabilities: exactly, not only close.
    np.testing.assert_allclose(without, np.log(with_activation), rtol=1e-9)


@pytest.mark.parametrize("path", ["/score", "/rerank"])
def test_score_and_rerank_are_not_served(server: httpx.Client, path: str) -> None:
    # vLLM serves scoring only for single-score models; a classifier here has no such route at all.
    assert server.post(path, json={"model": MODEL, "queries": "ping", "documents": "pong"}).status_code == 404


def test_pooling_classify(server: httpx.Client) -> None:
    body = {"model": MODEL, "input": TEXT, "encoding_format": "float", "task": "classify"}
    response = server.post("/pooling", json=body)
    assert response.status_code == 200, response.text
    poolings = VllmPoolingResponse.model_validate(response.json())
    assert len(poolings.data) == 1
    assert len(poolings.data[0].data) == 2
    assert poolings.data[0].data == pytest.approx(classify(server, input=TEXT).data[0].probs)
    packed = VllmPoolingResponse.model_validate(
        server.post("/pooling", json={**body, "encoding_format": "base64"}).json()
    )
    assert isinstance(packed.data[0].data, str)
    unpacked = np.frombuffer(base64.b64decode(packed.data[0].data), dtype="<f4")
    np.testing.assert_allclose(unpacked, poolings.data[0].data, rtol=1e-6, atol=1e-30)  # float32
    assert poolings.usage.prompt_tokens == len(TEXT.split())


@pytest.mark.parametrize("task", ["embed", "token_embed", "token_classify", "plugin"])
def test_pooling_not_supported(server: httpx.Client, task: str) -> None:
    body = {"model": MODEL, "input": TEXT, "encoding_format": "float", "task": task}
    error = refused(server, "/pooling", body).error
    assert error.message.startswith(f"task: unsupported task {task!r}")
    assert error.param == "task"
