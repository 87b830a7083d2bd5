"""One test per error code of the native API, and bad input that must never become a 500."""

from __future__ import annotations

import asyncio
import logging

import pytest

from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, KeywordEngine, Running, corrupt, started, trained

pytestmark = pytest.mark.anyio


def error_of(r: object, status: int, code: str, param: str | None = None) -> str:
    """Check status, shape, code and param of an error response; return its message."""
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    error = ErrorResponse.model_validate(r.json()).error  # type: ignore[attr-defined]
    assert error.code == code
    assert error.param == param
    assert error.request_id == r.headers["x-request-id"]  # type: ignore[attr-defined]
    return error.message


async def test_input_too_long_names_the_field_and_the_limit(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.post("/v1/classify", json={"text": "a" * 12_345}, headers=auth)
    assert error_of(r, 400, "INPUT_TOO_LONG", "text") == "text: 12,345 characters, the limit is 10,000"
    r = await running.client.post("/v1/batch", json={"texts": ["ok", "b" * 10_001]}, headers=auth)
    assert error_of(r, 400, "INPUT_TOO_LONG", "texts[1]") == "texts[1]: 10,001 characters, the limit is 10,000"


@pytest.mark.parametrize(
    ("path", "body", "param", "fragment"),
    [
        ("/v1/classify", {"text": ""}, "text", "must not be empty"),
        ("/v1/classify", {}, "text", "field required"),
        ("/v1/classify", {"text": 42}, "text", "valid string"),
        ("/v1/classify", {"text": "x", "top_k": 0}, "top_k", "greater than or equal to 1"),
        ("/v1/classify", {"text": "x", "top_k": "3"}, "top_k", "valid integer"),
        ("/v1/classify", {"text": "x", "threshold": 1.5}, "threshold", "less than or equal to 1"),
        ("/v1/classify", {"text": "x", "tok_k": 3}, "tok_k", "extra inputs"),
        ("/v1/classify", {"text": "x", "labels": ["a", "b"], "model": "intents"}, "model", "leave it out"),
        ("/v1/classify", {"text": "x", "categories": [{"key": "a"}]}, "categories", "at least 2 labels"),
        ("/v1/batch", {"texts": ["x"], "explain": True}, "explain", "/v1/classify only"),
        ("/v1/classify", {"text": "x", "model": "Bad Name!"}, "model", "not a valid model name"),
        ("/v1/classify", {"text": "x", "model": "intents:one"}, "model", "MAJOR.MINOR.PATCH"),
        ("/v1/classify", ["not", "an", "object"], "body", "valid dictionary"),
        ("/v1/batch", {"texts": []}, "texts", "at least 1 item"),
        ("/v1/batch", {"texts": ["ok", ""]}, "texts[1]", "must not be empty"),
        ("/v1/batch", {"texts": ["ok", 7]}, "texts[1]", "valid string"),
        ("/v1/batch", {"texts": "just one"}, "texts", "valid list"),
        ("/v1/batch", {"texts": ["x"] * 513}, "texts", "513 texts, the limit is 512"),
    ],
)
async def test_invalid_request_names_the_field(
    running: Running, auth: dict[str, str], path: str, body: object, param: str, fragment: str
) -> None:
    r = await running.client.post(path, json=body, headers=auth)
    message = error_of(r, 400, "invalid_request", param)
    assert message.startswith(f"{param}: ")
    assert fragment in message


@pytest.mark.parametrize(
    "raw",
    [
        b'{"text": "\xff\xfe broken utf-8"}',
        b'{"text": "unterminated',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
        b"",
    ],
    ids=["invalid-utf8", "truncated", "deep-array", "deep-object", "empty"],
)
async def test_malformed_bodies_are_400(running: Running, auth: dict[str, str], raw: bytes) -> None:
    headers = {**auth, "content-type": "application/json"}
    r = await running.client.post("/v1/classify", content=raw, headers=headers)
    assert r.status_code == 400, r.text
    assert ErrorResponse.model_validate(r.json()).error.code == "invalid_request"


@pytest.mark.parametrize(
    "raw", [b'{"text": "nul \\u0000 inside"}', b'{"text": "lone \\ud800 surrogate"}', b'{"text": "\\udfff"}']
)
async def test_odd_but_valid_json_text_is_classified(running: Running, auth: dict[str, str], raw: bytes) -> None:
    r = await running.client.post("/v1/classify", content=raw, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 200, r.text


async def test_unknown_model_alias_and_version_are_404(running: Running, auth: dict[str, str]) -> None:
    for ref, fragment in [
        ("nope", "model 'nope' not found"),
        ("intents@canary", "has no alias 'canary'"),
        ("intents:9.9.9", "has no version 9.9.9"),
    ]:
        r = await running.client.post("/v1/classify", json={"text": "card", "model": ref}, headers=auth)
        assert fragment in error_of(r, 404, "model_not_found", "model")


async def test_unknown_route_is_404_and_wrong_method_405(running: Running, auth: dict[str, str]) -> None:
    error_of(await running.client.get("/v1/nothing-here", headers=auth), 404, "not_found")
    error_of(await running.client.get("/v1/classify", headers=auth), 405, "method_not_allowed")


async def test_declared_body_over_the_limit_is_413(running: Running, auth: dict[str, str]) -> None:
    headers = {**auth, "content-type": "application/json", "content-length": str(3_000_000)}
    r = await running.client.post("/v1/classify", content=b"{}", headers=headers)
    assert error_of(r, 413, "payload_too_large", "body") == "body: 3,000,000 bytes, the limit is 2,000,000"


async def test_streamed_body_over_the_limit_is_413(running: Running, auth: dict[str, str]) -> None:
    async def chunks():  # no Content-Length: the server must count
        for _ in range(30):
            yield b" " * 100_000

    r = await running.client.post("/v1/batch", content=chunks(), headers={**auth, "content-type": "application/json"})
    assert "limit of 2,000,000" in error_of(r, 413, "payload_too_large", "body")


async def test_engine_bug_is_a_generic_500_logged_with_traceback(
    running: Running, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    KeywordEngine.fail_on = "EXPLODE"
    with caplog.at_level(logging.ERROR):
        r = await running.client.post("/v1/classify", json={"text": "EXPLODE now"}, headers=auth)
    message = error_of(r, 500, "internal_error")
    assert "secret internal detail" not in r.text
    assert r.headers["x-request-id"] in message or "request id" in message
    logged = [rec for rec in caplog.records if rec.exc_info and getattr(rec, "request_id", None)]
    assert logged
    assert logged[0].request_id == r.headers["x-request-id"]
    ok = await running.client.post("/v1/classify", json={"text": "card"}, headers=auth)
    assert ok.status_code == 200  # the batcher survives a failed call


async def test_pinned_version_that_fails_its_checksum_is_refused(
    running: Running, fx: Fixture, auth: dict[str, str]
) -> None:
    broken = fx.publish("intents", trained(boost=2.0))
    corrupt(fx.store, broken)
    await running.manager.refresh()
    r = await running.client.post("/v1/classify", json={"text": "card", "model": "intents:1.1.0"}, headers=auth)
    assert "could not be loaded" in error_of(r, 500, "model_load_error", "model")


async def test_full_queue_is_503_with_retry_after_at_once(settings: Settings, fx: Fixture) -> None:
    fx.publish("intents")
    key = {"x-api-key": fx.key()}
    tight = settings.model_copy(update={"queue_max": 1, "cache_size": 0})
    async with started(tight, inference_threads=1) as app:
        KeywordEngine.delay_seconds = 0.3
        responses = await asyncio.gather(
            *(app.client.post("/v1/classify", json={"text": f"card {i}"}, headers=key) for i in range(6))
        )
    refused = [r for r in responses if r.status_code == 503]
    assert refused, [r.status_code for r in responses]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert "busy" in error_of(refused[0], 503, "overloaded")
    assert any(r.status_code == 200 for r in responses)
