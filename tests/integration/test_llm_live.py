"""Generation through a real `labelwise serve` (two workers) in front of a real llama.cpp server (SmolLM2-135M):
the native routes, the stream, the official `openai` client, billing and usage per token, the token rate limit,
cancellation when the client leaves, upstream errors, and an upstream that is down."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from tests.api.serving_fakes import Fixture, make_settings, wait_all_ready, wait_until
from tests.conftest import encoder_cache_dir
from tests.llm_upstream import MODEL_ALIAS, free_port

from labelwise.api.schemas.generate import GenerateResponse
from labelwise.api.schemas.health import Readiness
from labelwise.services.keys import KeyChanges

TOKEN_LIMIT = 400  # tokens per minute per key, on the server under test


@dataclass
class Server:
    base: str
    fixture: Fixture
    log: Path
    llm_url: str = ""

    def key(self, *scopes: str, credits: int | None = 10_000) -> str:
        secret, _ = self.fixture.keys.create("llm", list(scopes), settings=KeyChanges(credits=credits))
        return secret

    def balance(self, key: str) -> int | None:
        prefix = key.split("_")[1]
        return self.fixture.keys.get(prefix).credits


@contextmanager
def labelwise_serve(tmp_path: Path, **env: str) -> Iterator[Server]:
    """`labelwise serve` with its default two workers on a free port, with `env` added to its settings."""
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    settings = make_settings(data, f"sqlite:///{data / 'labelwise.db'}")
    fixture = Fixture(settings)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    base_env |= {
        "LABELWISE_DATA_DIR": str(data),
        "LABELWISE_PORT": str(port),
        "LABELWISE_ENCODER_DIR": str(encoder_cache_dir()),
        "LABELWISE_USAGE_FLUSH_SECONDS": "0.2",
        "LABELWISE_LOG_LEVEL": "INFO",
        **env,
    }
    log = tmp_path / "server.log"
    code = "from labelwise.cli.app import app; app(['serve'])"
    with log.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-c", code], env=base_env, stderr=stderr, text=True)
        try:
            wait_all_ready(f"http://127.0.0.1:{port}")
            yield Server(f"http://127.0.0.1:{port}", fixture, log, env.get("LABELWISE_LLM_URL", ""))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
            fixture.close()
    assert process.returncode == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm_upstream: str) -> Iterator[Server]:
    env = {
        "LABELWISE_LLM_URL": llm_upstream,
        "LABELWISE_LLM_MODEL": MODEL_ALIAS,
        "LABELWISE_LLM_TOKEN_RATE_LIMIT": f"{TOKEN_LIMIT}/minute",
    }
    with labelwise_serve(tmp_path_factory.mktemp("llm-serve"), **env) as running:
        yield running


def _usage(server: Server, key: str) -> dict[str, dict[str, int]]:
    admin = server.key("admin", credits=None)
    data = httpx.get(server.base + "/v1/usage", headers={"x-api-key": admin}, timeout=30).json()["data"]
    prefix = key.split("_")[1]
    return {row["route"]: row for row in data if row["key"] == prefix}


def test_generate_bills_tokens_and_records_them(server: Server) -> None:
    key = server.key("generate")
    body = {"prompt": "Say hello.", "max_tokens": 4, "temperature": 0.0}
    r = httpx.post(server.base + "/v1/generate", json=body, headers={"x-api-key": key}, timeout=60)
    assert r.status_code == 200, r.text
    answer = GenerateResponse.model_validate(r.json())
    assert answer.text
    assert answer.model == MODEL_ALIAS
    assert 1 <= answer.usage.completion_tokens <= 4
    assert answer.usage.prompt_tokens > 0
    tokens = answer.usage.prompt_tokens + answer.usage.completion_tokens
    cost = 1 + math.ceil(tokens * 10 / 1000)  # the default prices: 1 per request, 10 per 1,000 tokens
    assert int(r.headers["x-credits-cost"]) == cost
    assert int(r.headers["x-credits-remaining"]) == 10_000 - cost == server.balance(key)
    assert float(r.headers["x-inference-time"]) > 0
    wait_until(lambda: "/v1/generate" in _usage(server, key), timeout=30)
    row = _usage(server, key)["/v1/generate"]
    assert (row["requests"], row["tokens"], row["credits"]) == (1, tokens, cost)

    # The scope: a classify key may not generate.
    refused = httpx.post(server.base + "/v1/generate", json=body, headers={"x-api-key": server.key("classify")})
    assert refused.status_code == 403
    assert "generate" in refused.text


def test_generate_stream_is_server_sent_events_ending_in_done(server: Server) -> None:
    key = server.key("generate")
    body = {"prompt": "Count: one, two,", "max_tokens": 6, "temperature": 0.0}
    url = server.base + "/v1/generate/stream"
    with httpx.stream("POST", url, json=body, headers={"x-api-key": key}, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert len(lines) >= 2
    assert all(line.startswith("data: ") for line in lines)
    whole = httpx.post(server.base + "/v1/generate", json=body, headers={"x-api-key": key}, timeout=60).json()["text"]
    streamed = "".join(line[len("data: ") :] for line in lines[:-1])
    assert streamed.replace("\n", "") == whole.replace("\n", "")  # temperature 0: the same text either way


def test_the_openai_client_works_unchanged(server: Server) -> None:
    key = server.key("generate")
    client = openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0)
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Say hi."}]
    answer = client.chat.completions.create(model=MODEL_ALIAS, messages=messages, max_tokens=4, temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens <= 4
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model=MODEL_ALIAS, messages=messages, max_tokens=4, temperature=0, stream=True
        )
        if chunk.choices
    ]
    assert "".join(pieces) == answer.choices[0].message.content
    # An upstream 4xx is our 400 in OpenAI's shape, naming the upstream's message.
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL_ALIAS, messages=messages, max_tokens=4, extra_body={"top_p": "not a number"}
        )
    assert caught.value.code == "upstream_rejected"
    assert "upstream refused the request" in str(caught.value.message)
    # Our own checks, in the same shape.
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model=MODEL_ALIAS, messages=messages, max_tokens=5000)
    assert too_many.value.param == "max_tokens"


def test_closing_a_stream_cancels_it_and_refunds_it(server: Server) -> None:
    key = server.key("generate")
    body = {"prompt": "Write a long story about a dragon.", "max_tokens": 1000, "temperature": 0.8}
    url = server.base + "/v1/generate/stream"
    with httpx.stream("POST", url, json=body, headers={"x-api-key": key}, timeout=120) as r:
        assert r.status_code == 200
        reserved = int(r.headers["x-credits-cost"])
        assert server.balance(key) == 10_000 - reserved
        first = next(line for line in r.iter_lines() if line)
        assert first.startswith("data: ")
    # The client is gone: the server cancels the generation and gives the whole reservation back.
    wait_until(lambda: server.balance(key) == 10_000, timeout=30)
    wait_until(lambda: "generation stopped: the client went away" in server.log.read_text(), timeout=30)


def test_tokens_are_rate_limited_per_key(server: Server) -> None:
    key = server.key("generate")
    body = {"prompt": "Hi", "max_tokens": 2, "temperature": 0.0}
    statuses: list[httpx.Response] = []
    with httpx.Client(base_url=server.base, headers={"x-api-key": key}, timeout=60) as client:
        for _ in range(60):  # each request spends ~35 tokens of the key's 400 a minute
            r = client.post("/v1/generate", json=body)
            statuses.append(r)
            if r.status_code != 200:
                break
    last = statuses[-1]
    assert last.status_code == 429, [r.status_code for r in statuses]
    assert "token limit exceeded: 400 tokens per 60 s" in last.json()["error"]["message"]
    assert int(last.headers["retry-after"]) >= 1
    assert 2 <= len(statuses) <= 60


def test_an_upstream_that_is_down(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    secret = "sk-upstream-" + os.urandom(8).hex()
    env = {"LABELWISE_LLM_URL": dead, "LABELWISE_LLM_MODEL": MODEL_ALIAS, "LABELWISE_LLM_API_KEY": secret}
    with labelwise_serve(tmp_path, **env) as server:
        key = server.key("generate", "classify")
        answers: list[httpx.Response] = []
        ready = httpx.get(server.base + "/ready", timeout=30)
        assert ready.status_code == 200  # classification does not need the upstream
        assert Readiness.model_validate(ready.json()).upstreams == {"llm": "degraded"}
        for route in ("/v1/generate", "/v1/generate/stream"):
            r = httpx.post(server.base + route, json={"prompt": "hi"}, headers={"x-api-key": key}, timeout=30)
            answers.append(r)
        # Classification by the language model, per request and in a batch, needs the upstream too.
        llm_classify = {"labels": ["positive", "negative"], "method": "llm"}
        for route, body in (("/v1/classify", {"text": "hi"}), ("/v1/batch", {"texts": ["hi", "there"]})):
            r = httpx.post(server.base + route, json=body | llm_classify, headers={"x-api-key": key}, timeout=30)
            answers.append(r)
        for r in answers:
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "upstream_unavailable"
            assert int(r.headers["retry-after"]) >= 1
            assert secret not in r.text
        client = openai.OpenAI(base_url=server.base + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "user", "content": "hi"}])
        assert caught.value.status_code == 503
        assert secret not in str(caught.value)
        assert server.balance(key) == 10_000  # nothing billed
        # Classification without the language model goes on: zero-shot through the encoder.
        zeroshot = {"text": "hi", "labels": ["positive", "negative"]}
        zs = httpx.post(server.base + "/v1/classify", json=zeroshot, headers={"x-api-key": key}, timeout=120)
        assert zs.status_code == 200, zs.text
    log = server.log.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert not any(line.get("status") == 500 for line in lines)
    assert any(line.get("msg") == "llm upstream failed" for line in lines)  # the outage is logged ...
    assert secret not in log  # ... and the upstream's key never is, not even among the settings at start


def test_llm_classification_is_constrained_to_the_labels_and_scored(server: Server) -> None:
    key = server.key("classify")
    headers = {"x-api-key": key}
    body = {"text": "What a wonderful film, I loved every minute!", "labels": ["positive", "negative"], "method": "llm"}
    r = httpx.post(server.base + "/v1/classify", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["model"], answer["model_version"]) == ("llm", MODEL_ALIAS)
    assert answer["predicted"] == ["positive"]
    assert sum(label["score"] for label in answer["labels"]) == pytest.approx(1.0)
    assert int(r.headers["x-credits-cost"]) == 20  # the `llm` price per text
    # Labels no model would write by itself: the grammar keeps every answer inside the set.
    odd = ["zq_alpha", "xv_beta", "wk_gamma"]
    texts = ["The cat sat on the mat.", "Stocks fell sharply today.", "Rain is expected tomorrow."]
    batch = httpx.post(
        server.base + "/v1/batch", json={"texts": texts, "labels": odd, "method": "llm"}, headers=headers, timeout=120
    )
    assert batch.status_code == 200, batch.text
    for item in batch.json()["results"]:
        assert len(item["predicted"]) == 1
        assert item["predicted"][0] in odd
    # The same question again comes from the cache: the same answer, no time upstream. Each of the two workers
    # has its own cache, so by the third asking one of them has answered it before.
    repeats = [httpx.post(server.base + "/v1/classify", json=body, headers=headers, timeout=60) for _ in range(3)]
    assert all(again.json()["labels"] == answer["labels"] for again in repeats)
    assert any(float(again.headers["x-inference-time"]) == 0.0 for again in repeats)
    # Wrong use names the field.
    wrong = httpx.post(server.base + "/v1/classify", json={"text": "x", "method": "llm"}, headers=headers)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "method"


SENTIMENT = {
    "train": [
        ("I loved this film, it was wonderful", "positive"),
        ("A delightful, moving story", "positive"),
        ("Great acting and a superb script", "positive"),
        ("Terrible, boring and far too long", "negative"),
        ("I hated every minute of it", "negative"),
        ("A dull, lifeless mess", "negative"),
    ],
    "dev": [("What a joy to watch", "positive"), ("Awful and tedious", "negative")],
    "test": [("Brilliant and beautiful, I adored it", "positive"), ("The worst film I have ever seen", "negative")],
}


def test_a_stored_llm_model_is_trained_served_on_every_surface_and_evaluated(server: Server, tmp_path: Path) -> None:
    for split, rows in SENTIMENT.items():
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
    env |= {
        "LABELWISE_DATA_DIR": str(server.fixture.settings.data_dir),
        "LABELWISE_ENCODER_DIR": str(encoder_cache_dir()),
        "LABELWISE_LLM_URL": server.llm_url,
        "LABELWISE_LLM_MODEL": MODEL_ALIAS,
    }
    cli = [sys.executable, "-c", "from labelwise.cli.app import app; app()"]
    trained = subprocess.run(
        [*cli, "train", str(tmp_path / "train.jsonl"), "--name", "sentiment", "--engine", "llm",
         "--validation", str(tmp_path / "dev.jsonl"), "--test", str(tmp_path / "test.jsonl"), "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["engine"] == "llm"

    key = server.key("classify")
    headers = {"x-api-key": key}

    def served() -> bool:
        body = {"text": "x", "model": "sentiment"}
        return httpx.post(server.base + "/v1/classify", json=body, headers=headers, timeout=300).status_code == 200

    # Each worker finds the new version when it next polls the store; fresh connections reach both (an answer
    # to the same text is cached per worker, so this asks the model at most twice).
    wait_until(lambda: all(served() for _ in range(6)), timeout=120)
    r = httpx.post(
        server.base + "/v1/classify",
        json={"text": "An absolutely wonderful, joyful film", "model": "sentiment"},
        headers=headers,
        timeout=300,
    )
    assert r.status_code == 200, r.text
    # What a 135M model answers is not the point (its scores for these texts are close): that the stored version
    # answers, with its own labels only, is.
    assert (r.json()["model"], r.json()["model_version"]) == ("sentiment", "1.0.0")
    assert r.json()["predicted"] in (["positive"], ["negative"])
    assert sum(label["score"] for label in r.json()["labels"]) == pytest.approx(1.0)
    vllm = httpx.post(
        server.base + "/classify",
        json={"model": "sentiment", "input": ["A boring, awful film"]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=300,
    )
    assert vllm.status_code == 200, vllm.text
    assert vllm.json()["data"][0]["label"] in ("positive", "negative")

    evaluated = subprocess.run(
        [*cli, "eval", "sentiment", str(tmp_path / "test.jsonl"), "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert (metrics["model"], metrics["n"]) == ("sentiment", 2)
    assert 0.0 <= metrics["accuracy"] <= 1.0
