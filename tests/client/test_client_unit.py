"""The Python client against `httpx.MockTransport`: requests, typed results, retries, error mapping, no key leaks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest

import labelwise
from labelwise.client import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    InsufficientBalanceError,
    LabelwiseAPIError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from labelwise.client._errors import parse_retry_after

KEY = "lw_abcd1234_supersecretkeymaterial"
Handler = Callable[[httpx.Request], httpx.Response]

CLASSIFIED = {
    "labels": [{"label": "card", "score": 0.9}, {"label": "topup", "score": 0.1}],
    "predicted": ["card"],
    "top_k": 2,
    "model": "intents",
    "model_version": "1.0.0",
    "latency_ms": 1.5,
    "request_id": "req_1",
}


def native(code: str, message: str, param: str | None = None, request_id: str | None = "req_e") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": param, "request_id": request_id}}


class Recorder:
    """A MockTransport handler answering from a list (the last answer repeats) and keeping every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


def make(recorder: Handler, sleeps: list[float] | None = None, **kwargs: Any) -> Client:
    sleeper = sleeps.append if sleeps is not None else _no_sleep
    return Client("http://lw.test", KEY, transport=httpx.MockTransport(recorder), sleep=sleeper, **kwargs)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep of {seconds} s")


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def test_classify_sends_the_key_and_options_and_returns_a_typed_result() -> None:
    rec = Recorder(ok(CLASSIFIED))
    with make(rec) as client:
        result = client.classify("my card", top_k=2)
    assert result.predicted == ["card"]
    assert result.labels[0].label == "card"
    assert result.labels[0].score == pytest.approx(0.9)
    assert (result.model, result.model_version, result.request_id) == ("intents", "1.0.0", "req_1")
    request = rec.requests[0]
    assert (request.method, request.url.path) == ("POST", "/v1/classify")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"].startswith("labelwise-python/")
    assert rec.bodies() == [{"text": "my card", "top_k": 2, "threshold": 0.0}]


def test_zero_shot_options_are_sent_only_when_given() -> None:
    rec = Recorder(ok(CLASSIFIED))
    with make(rec) as client:
        client.classify("t", model="m@prod", labels=["a", "b"], multi_label=True)
        client.classify("t", categories={"billing": "money questions"})
        with pytest.raises(TypeError, match="labels"):
            client.classify("t", labels="a,b")
    assert rec.bodies() == [
        {"text": "t", "top_k": 3, "threshold": 0.0, "model": "m@prod", "labels": ["a", "b"], "multi_label": True},
        {
            "text": "t",
            "top_k": 3,
            "threshold": 0.0,
            "categories": [{"key": "billing", "description": "money questions"}],
        },
    ]


def test_batch_models_model_and_usage_parse_their_bodies() -> None:
    version = {"version": "1.0.0", "engine": "linear", "task": "single_label", "aliases": ["production"]}
    version["created_at"] = "2026-01-02T03:04:05Z"
    answers = {
        "/v1/batch": {
            "results": [{"index": 0, "labels": [{"label": "card", "score": 1.0}], "predicted": ["card"]}],
            "model": "intents",
            "model_version": "1.0.0",
            "request_id": "req_b",
        },
        "/v1/models": {
            "object": "list",
            "data": [{"id": "intents", "created": 1, "aliases": {}, "versions": [version]}],
        },
        "/v1/models/a%2Fb": {
            "id": "a/b",
            "created": 1,
            "aliases": {"production": "1.0.0"},
            "versions": [{**version, "labels": ["card", "topup"], "metrics": {"accuracy": 1.0}, "thresholds": None}],
        },
        "/v1/usage": {
            "object": "list",
            "from": "2026-01-01",
            "to": "2026-01-31",
            "data": [
                {
                    "key": "lw_abcd",
                    "day": "2026-01-02",
                    "route": "/v1/classify",
                    "requests": 2,
                    "texts": 3,
                    "characters": 40,
                    "credits": 3,
                }
            ],
            "total": {"requests": 2, "texts": 3, "characters": 40, "credits": 3},
        },
    }
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return ok(answers[request.url.raw_path.decode().split("?")[0]])

    with make(handler) as client:
        batch = client.batch(["my card"])
        models = client.models()
        detail = client.model("a/b")
        usage = client.usage(start=date(2026, 1, 1), key="lw_abcd")
        with pytest.raises(TypeError, match="texts"):
            client.batch("one string")
    assert batch.results[0].predicted == ["card"]
    assert models[0].id == "intents"
    assert models[0].versions[0].created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert detail.versions[0].labels == ["card", "topup"]
    assert detail.aliases == {"production": "1.0.0"}
    assert (usage.start, usage.end, usage.total.credits) == (date(2026, 1, 1), date(2026, 1, 31), 3)
    assert usage.data[0].day == date(2026, 1, 2)
    assert dict(seen[-1].params) == {"from": "2026-01-01", "key": "lw_abcd"}


def test_embeddings_reads_the_openai_shape_in_index_order() -> None:
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
            {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
        ],
        "model": "labelwise-embed",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }
    rec = Recorder(ok(body))
    with make(rec) as client:
        result = client.embeddings(["a", "b"], model="labelwise-embed")
    assert result.vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert result.usage is not None
    assert result.usage.total_tokens == 5
    assert rec.requests[0].url.path == "/v1/embeddings"
    assert rec.bodies() == [{"input": ["a", "b"], "model": "labelwise-embed"}]


def test_429_and_503_are_retried_after_retry_after_seconds() -> None:
    sleeps: list[float] = []
    rec = Recorder(
        httpx.Response(429, json=native("TOO_MANY_REQUESTS", "slow down"), headers={"Retry-After": "2"}),
        httpx.Response(503, json=native("overloaded", "busy"), headers={"Retry-After": "1"}),
        ok(CLASSIFIED),
    )
    with make(rec, sleeps) as client:
        assert client.classify("x").predicted == ["card"]
    assert sleeps == [2.0, 1.0]
    assert len(rec.requests) == 3


def test_retries_stop_at_max_retries_with_the_last_error() -> None:
    sleeps: list[float] = []
    rec = Recorder(
        httpx.Response(503, json=native("overloaded", "busy", request_id="req_9"), headers={"Retry-After": "3"})
    )
    with make(rec, sleeps, max_retries=2) as client, pytest.raises(ServiceUnavailableError) as info:
        client.classify("x")
    assert sleeps == [3.0, 3.0]
    assert len(rec.requests) == 3
    assert (info.value.code, info.value.request_id, info.value.retry_after) == ("overloaded", "req_9", 3.0)


def test_without_retry_after_the_backoff_grows_exponentially_with_jitter() -> None:
    sleeps: list[float] = []
    rec = Recorder(httpx.Response(429, json=native("TOO_MANY_REQUESTS", "slow down")))
    with make(rec, sleeps, max_retries=4) as client, pytest.raises(RateLimitError):
        client.models()
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps):
        assert 0.5 * 2**attempt * 0.75 <= slept <= 0.5 * 2**attempt


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 413, 422, 500])
def test_other_statuses_are_never_retried(status: int) -> None:
    rec = Recorder(httpx.Response(status, json=native("some_code", "no"), headers={"Retry-After": "1"}))
    with make(rec, []) as client, pytest.raises(LabelwiseAPIError):
        client.classify("x")
    assert len(rec.requests) == 1


def test_connection_errors_are_retried_for_reads_and_unopened_connections_only() -> None:
    sleeps: list[float] = []
    broken = Recorder(httpx.ReadError("connection reset"), ok({"object": "list", "data": []}))
    with make(broken, sleeps) as client:
        assert client.models() == []
    assert len(sleeps) == 1
    refused = Recorder(httpx.ConnectError("connection refused"), ok(CLASSIFIED))
    with make(refused, sleeps) as client:
        assert client.classify("x").predicted == ["card"]
    post_broken = Recorder(httpx.ReadError("connection reset"), ok(CLASSIFIED))
    with make(post_broken, sleeps) as client, pytest.raises(APIConnectionError, match="connection reset"):
        client.classify("x")
    assert len(post_broken.requests) == 1
    timeout = Recorder(httpx.ReadTimeout("timed out"))
    with make(timeout, sleeps, max_retries=0) as client, pytest.raises(APITimeoutError):
        client.models()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientBalanceError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, BadRequestError),
        (422, BadRequestError),
        (429, RateLimitError),
        (503, ServiceUnavailableError),
        (500, LabelwiseAPIError),
    ],
)
def test_native_errors_map_to_classes_with_every_field(status: int, cls: type[LabelwiseAPIError]) -> None:
    rec = Recorder(httpx.Response(status, json=native("the_code", "text: too long", "text", "req_42")))
    with make(rec, [], max_retries=0) as client, pytest.raises(LabelwiseAPIError) as info:
        client.classify("x")
    error = info.value
    assert type(error) is cls
    assert (error.code, error.message, error.param, error.status_code, error.request_id) == (
        "the_code",
        "text: too long",
        "text",
        status,
        "req_42",
    )
    assert str(error) == f"the_code: text: too long (HTTP {status}, request id req_42)"


def test_openai_and_categories_error_shapes_and_bodies_that_are_not_json() -> None:
    openai = {
        "error": {
            "message": "input: must not be empty",
            "type": "invalid_request_error",
            "param": "input",
            "code": None,
        }
    }
    rec = Recorder(
        httpx.Response(400, json=openai, headers={"x-request-id": "req_h"}),
        httpx.Response(402, json={"error": "not enough credits", "code": "INSUFFICIENT_BALANCE"}),
        httpx.Response(500, text="<html>oops</html>"),
    )
    with make(rec, []) as client:
        with pytest.raises(BadRequestError) as first:
            client.embeddings("")
        with pytest.raises(InsufficientBalanceError) as second:
            client.classify("x")
        with pytest.raises(LabelwiseAPIError) as third:
            client.classify("x")
    assert (first.value.code, first.value.param, first.value.error_type) == (
        "invalid_request_error",
        "input",
        "invalid_request_error",
    )
    assert (first.value.message, first.value.request_id) == ("input: must not be empty", "req_h")
    assert (second.value.code, second.value.message) == ("INSUFFICIENT_BALANCE", "not enough credits")
    assert (third.value.message, third.value.status_code) == ("HTTP 500 Internal Server Error", 500)


def test_an_unexpected_success_body_is_an_api_error() -> None:
    rec = Recorder(ok({"labels": "nope"}, **{"x-request-id": "req_x"}))
    with make(rec) as client, pytest.raises(LabelwiseAPIError) as info:
        client.classify("x")
    assert (info.value.code, info.value.request_id) == ("invalid_response", "req_x")


def test_the_key_never_appears_in_reprs_or_messages() -> None:
    echoed = native("unauthorized", f"bad key {KEY}", request_id="req_k")
    rec = Recorder(httpx.Response(401, json=echoed), httpx.ConnectError(f"refused for {KEY}"))
    with make(rec, [], max_retries=0) as client:
        assert KEY not in repr(client)
        with pytest.raises(AuthenticationError) as auth:
            client.classify("x")
        with pytest.raises(APIConnectionError) as conn:
            client.classify("x")
    for error in (auth.value, conn.value):
        assert KEY not in str(error)
        assert KEY not in repr(error)
        assert KEY not in error.message
    assert "***" in auth.value.message


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELWISE_URL", "http://env.test:9000/")
    monkeypatch.setenv("LABELWISE_API_KEY", "lw_env_key")
    rec = Recorder(ok({"object": "list", "data": []}))
    with Client(transport=httpx.MockTransport(rec)) as client:
        client.models()
    assert str(rec.requests[0].url) == "http://env.test:9000/v1/models"
    assert rec.requests[0].headers["authorization"] == "Bearer lw_env_key"
    monkeypatch.delenv("LABELWISE_URL")
    monkeypatch.delenv("LABELWISE_API_KEY")
    with Client() as client:
        assert client.base_url == "http://127.0.0.1:8000"
        assert "authorization" not in client._http.headers


def test_async_client_has_the_same_behaviour() -> None:
    sleeps: list[float] = []
    rec = Recorder(
        httpx.Response(429, json=native("TOO_MANY_REQUESTS", "slow"), headers={"Retry-After": "4"}),
        ok(CLASSIFIED),
        httpx.Response(404, json=native("model_not_found", "model: 'x' not found", "model", "req_n")),
    )

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def scenario() -> None:
        transport = httpx.MockTransport(rec)
        async with AsyncClient("http://lw.test", KEY, transport=transport, sleep=record) as client:
            assert KEY not in repr(client)
            assert (await client.classify("x")).predicted == ["card"]
            with pytest.raises(NotFoundError) as info:
                await client.classify("x", model="x")
            assert (info.value.param, info.value.request_id) == ("model", "req_n")

    anyio.run(scenario)
    assert sleeps == [4.0]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None
    assert 25 <= seconds <= 31


def test_import_labelwise_stays_light_and_exports_the_clients_lazily() -> None:
    code = "import sys, labelwise; assert 'httpx' not in sys.modules, 'httpx imported'; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert labelwise.Client is Client
    assert labelwise.AsyncClient is AsyncClient
    with pytest.raises(AttributeError):
        _ = labelwise.Nope
