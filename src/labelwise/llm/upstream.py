"""The client of a language-model upstream that speaks OpenAI's chat completions API.

One pooled `httpx.AsyncClient` per process, with a connect timeout (a dead host fails fast) and a read timeout
(a stuck one does not hold a request forever). Every failure of the upstream is mapped here, once:

- not reachable, timed out, 5xx or 429 (overloaded) -> `UpstreamUnavailable` (503 with Retry-After);
- any other 4xx -> `UpstreamRejected` (400), carrying the upstream's own message, shortened;
- an answer that is not the JSON we expect -> `UpstreamUnavailable` as well: it is not the caller's fault.

One exception: llama-cpp-python's server answers a request it cannot validate with 500 and pydantic's message
("1 validation error: ..."). That is the caller's fault whatever the status says, so a 5xx whose message is a
validation error is `UpstreamRejected`, like the 422 other servers send for it.

Cancellation needs nothing special: a caller that is cancelled (its client went away) leaves the `async with` of a
stream or the awaited request, httpx closes that connection, and the upstream sees the disconnect.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from labelwise.errors import UpstreamRejected, UpstreamUnavailable

logger = logging.getLogger(__name__)

_MESSAGE_CHARS = 300  # of the upstream's error message, passed on to the caller
_VALIDATION = re.compile(r"\d+ validation errors?\b")


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """Where the upstream is and how long to wait for it. `url` is its OpenAI base, e.g. `http://host:8080/v1`."""

    url: str
    api_key: str | None = None
    model: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 120.0
    max_connections: int = 32
    name: str = "llm"


@dataclass(frozen=True, slots=True)
class ChatResult:
    """One chat completion as the upstream sent it, and how long it took."""

    body: dict[str, Any]
    seconds: float

    @property
    def text(self) -> str:
        choices = self.body.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content")
        return content if isinstance(content, str) else ""

    @property
    def prompt_tokens(self) -> int:
        return int((self.body.get("usage") or {}).get("prompt_tokens") or 0)

    @property
    def completion_tokens(self) -> int:
        return int((self.body.get("usage") or {}).get("completion_tokens") or 0)


class LLMUpstream:
    """Calls one OpenAI-compatible upstream; built once per process (bootstrap.py), closed at shutdown."""

    def __init__(self, config: UpstreamConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        self._client = httpx.AsyncClient(
            base_url=config.url.rstrip("/"), headers=headers, timeout=timeout, limits=limits, transport=transport
        )

    @property
    def default_model(self) -> str | None:
        return self.config.model

    async def chat(self, payload: Mapping[str, Any]) -> ChatResult:
        """POST /chat/completions (not streamed) and the parsed answer."""
        started = time.perf_counter()
        try:
            response = await self._client.post("/chat/completions", json=dict(payload))
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc
        body = checked_body(self.config.name, response.status_code, response.content)
        return ChatResult(body, time.perf_counter() - started)

    async def stream_chat(self, payload: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """POST /chat/completions with `stream: true`: each server-sent event's JSON, until `[DONE]`."""
        body = {**payload, "stream": True}
        try:
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    checked_body(self.config.name, response.status_code, await response.aread())
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, `event:` lines
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        message = f"{self.config.name} upstream: a stream event that is not JSON"
                        raise UpstreamUnavailable(message) from None
                    if isinstance(event, dict):
                        if "error" in event:
                            raise UpstreamUnavailable(f"{self.config.name} upstream: {_message(event)}")
                        yield event
        except httpx.HTTPError as exc:
            raise self._unavailable(exc) from exc

    async def ping(self, timeout: float = 1.0) -> bool:
        """True when the upstream answers `GET /models` with a 2xx within `timeout` seconds."""
        try:
            response = await self._client.get("/models", timeout=timeout)
        except httpx.HTTPError:
            return False
        return response.is_success

    async def close(self) -> None:
        await self._client.aclose()

    def _unavailable(self, exc: httpx.HTTPError) -> UpstreamUnavailable:
        return unavailable(self.config.name, exc)


class BlockingUpstream:
    """The same upstream for synchronous callers: the stored `llm` engine when `labelwise eval` or training scores
    texts outside the server. Errors are mapped as in `LLMUpstream`."""

    def __init__(self, config: UpstreamConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        timeout = httpx.Timeout(config.read_timeout, connect=config.connect_timeout)
        self._client = httpx.Client(
            base_url=config.url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def chat(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post("/chat/completions", json=dict(payload))
        except httpx.HTTPError as exc:
            raise unavailable(self.config.name, exc) from exc
        return checked_body(self.config.name, response.status_code, response.content)

    def close(self) -> None:
        self._client.close()


_configured: UpstreamConfig | None = None


def configure_upstream(config: UpstreamConfig | None) -> None:
    """Where stored `llm` models send their texts in this process (set by the composition root from settings)."""
    global _configured
    _configured = config


def configured_upstream() -> UpstreamConfig | None:
    return _configured


def unavailable(name: str, exc: httpx.HTTPError) -> UpstreamUnavailable:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "is unreachable"
    logger.warning("llm upstream failed", extra={"upstream": name, "error": type(exc).__name__})
    return UpstreamUnavailable(f"{name} upstream {kind}; retry later")


def checked_body(name: str, status: int, content: bytes) -> dict[str, Any]:
    """The upstream's JSON answer, or the mapped error for its status."""
    try:
        body = orjson.loads(content) if content else {}
    except orjson.JSONDecodeError:
        body = None
    if status >= 500 and isinstance(body, dict) and _VALIDATION.match(_message(body)):
        raise UpstreamRejected(f"{name} upstream refused the request: {_message(body)}")
    if status >= 500 or status == 429:
        logger.warning("llm upstream error", extra={"upstream": name, "status": status})
        raise UpstreamUnavailable(f"{name} upstream answered {status}; retry later")
    if status >= 400:
        message = _message(body) if isinstance(body, dict) else f"status {status}"
        raise UpstreamRejected(f"{name} upstream refused the request: {message}")
    if not isinstance(body, dict):
        raise UpstreamUnavailable(f"{name} upstream answered something that is not a JSON object")
    return body


def _message(body: Mapping[str, Any]) -> str:
    """The message of an OpenAI-shaped error (`{"error": {"message"}}`, or `{"error": "..."}`, or `detail`)."""
    error = body.get("error", body.get("detail"))
    if isinstance(error, dict):
        error = error.get("message", error)
    if isinstance(error, list) and error and isinstance(error[0], dict):  # FastAPI's validation details
        error = error[0].get("msg", error[0])
    text = str(error) if error is not None else "no message"
    return text[:_MESSAGE_CHARS]
