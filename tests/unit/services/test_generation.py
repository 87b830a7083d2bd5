"""The upstream client's error mapping and the generation service's checks, against an in-process fake upstream
(httpx.MockTransport). The same behaviour against a real llama.cpp server: tests/integration/test_llm_live.py."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from labelwise.errors import InputTooLong, InvalidRequest, UpstreamRejected, UpstreamUnavailable
from labelwise.llm import LLMUpstream, UpstreamConfig
from labelwise.services.credits import Charge, Reservation, TokenPrices
from labelwise.services.generation import GenerationService, Prompt

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _answer(text: str = "hello") -> dict[str, object]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }


def _service(handler: Callable[[httpx.Request], httpx.Response], **config: object) -> GenerationService:
    upstream = LLMUpstream(UpstreamConfig(url="http://upstream.test/v1", **config), httpx.MockTransport(handler))  # type: ignore[arg-type]
    return GenerationService(upstream, billing=None, limiter=None, prices=TokenPrices(), max_prompt_chars=100)


async def test_answer_and_what_is_sent() -> None:
    sent: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer sk-test"
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=_answer())

    service = _service(handler, api_key="sk-test", model="tiny")
    result = await service.generate(Prompt("hi", max_tokens=5, stop_sequences=("\n",)))
    assert (result.text, result.model, result.prompt_tokens, result.completion_tokens) == ("hello", "tiny", 7, 2)
    assert sent == [
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.7, "max_tokens": 5,
         "stop": ["\n"]}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, {"error": {"message": "bad top_p"}}, UpstreamRejected, "bad top_p"),
        (422, {"detail": [{"msg": "Input should be a valid number"}]}, UpstreamRejected, "valid number"),
        (404, {"error": "model 'x' not found"}, UpstreamRejected, "not found"),
        (500, {"error": "boom"}, UpstreamUnavailable, "answered 500"),
        (500, {"error": {"message": "1 validation error: top_p"}}, UpstreamRejected, "validation error: top_p"),
        (429, {}, UpstreamUnavailable, "answered 429"),
        (200, None, UpstreamUnavailable, "not a JSON object"),
    ],
)
async def test_upstream_errors_are_mapped_once(status: int, body: object, error: type[Exception], message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=b"[1]" if body is None else json.dumps(body).encode())

    with pytest.raises(error, match=message):
        await _service(handler, model="tiny").generate(Prompt("hi"))


async def test_unreachable_and_timeouts_are_unavailable() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamUnavailable, match="unreachable"):
        await _service(refused, model="m").generate(Prompt("hi"))
    with pytest.raises(UpstreamUnavailable, match="timed out"):
        await _service(slow, model="m").generate(Prompt("hi"))
    assert await _service(refused, model="m").upstream_state() == "degraded"


async def test_checks_name_the_field_and_the_limit() -> None:
    service = _service(lambda request: httpx.Response(200, json=_answer()))
    with pytest.raises(InvalidRequest, match="model: name the model"):
        await service.generate(Prompt("hi"))
    with pytest.raises(InputTooLong, match="prompt: 101 characters, the limit is 100"):
        await service.generate(Prompt("x" * 101, model="m"))
    with pytest.raises(InvalidRequest, match="max_tokens: 5000, give 1 to 4,096"):
        await service.chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5000})
    with pytest.raises(UpstreamUnavailable, match="LABELWISE_LLM_URL"):
        await GenerationService(None, billing=None, limiter=None, prices=TokenPrices(), max_prompt_chars=9).generate(
            Prompt("hi")
        )


def test_prices_and_settling_a_reservation() -> None:
    prices = TokenPrices(per_request=1, per_1000_tokens=10)
    assert (prices.cost(0), prices.cost(1), prices.cost(100), prices.cost(101)) == (1, 2, 2, 3)
    reservation = Reservation(Charge(50, 950))
    assert reservation.settle(3, tokens=120, characters=10) == Charge(3, 997)
    assert Reservation(Charge(5, 95)).settle(9, tokens=900, characters=10) == Charge(5, 95)  # capped at the reserve
    assert Reservation(Charge(5, None)).settle(2, tokens=9, characters=1) == Charge(2, None)


async def test_tokens_fill_the_window_and_then_refuse() -> None:
    from labelwise.services.limits import LimiterBackend, RequestLimiter

    limiter = RequestLimiter(LimiterBackend(), token_limit="100/minute")
    assert await limiter.check_tokens("k") is None
    await limiter.spend_tokens("k", 60)
    assert await limiter.check_tokens("k") is None
    await limiter.spend_tokens("k", 60)  # over: the window is full, not left untouched
    refused = await limiter.check_tokens("k")
    assert refused is not None
    assert refused.retry_after >= 1
