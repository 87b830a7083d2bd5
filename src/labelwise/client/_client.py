"""`Client` and `AsyncClient`: the Labelwise API over httpx, with typed results, retries and one error tree.

Both build the same request descriptions (`_Call`), so the two differ only in how they send: the sync client
through `httpx.Client`, the async one through `httpx.AsyncClient`. Pass `transport=httpx.MockTransport(...)` to
run without a server, and `sleep=` to retry without waiting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx

from labelwise import __version__
from labelwise.client._errors import (
    LabelwiseAPIError,
    error_from_response,
    error_from_transport,
    parse_retry_after,
    scrub,
)
from labelwise.client._retry import RetryPolicy
from labelwise.client._types import (
    BatchResult,
    Classification,
    Embeddings,
    ModelDetail,
    ModelSummary,
    Usage,
)

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")
Categories = Mapping[str, str] | Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One API request and how to read its successful answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None


def _strings(name: str, values: str | Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise TypeError(f"{name}: a list of strings, not one string")
    return list(values)


def _options(
    model: str | None,
    top_k: int,
    threshold: float,
    labels: Sequence[str] | None,
    categories: Categories | None,
    multi_label: bool | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"top_k": top_k, "threshold": threshold}
    if model is not None:
        body["model"] = model
    if labels is not None:
        body["labels"] = _strings("labels", labels)
    if categories is not None:
        if isinstance(categories, Mapping):
            body["categories"] = [{"key": k, "description": d} for k, d in categories.items()]
        else:
            body["categories"] = [dict(c) for c in categories]
    if multi_label is not None:
        body["multi_label"] = multi_label
    return body


def _classify(text: str, options: dict[str, Any]) -> _Call[Classification]:
    return _Call("POST", "/v1/classify", Classification.from_json, json={"text": text, **options})


def _batch(texts: Sequence[str], options: dict[str, Any]) -> _Call[BatchResult]:
    return _Call("POST", "/v1/batch", BatchResult.from_json, json={"texts": _strings("texts", texts), **options})


def _embeddings(input: str | Sequence[str], model: str | None) -> _Call[Embeddings]:
    body: dict[str, Any] = {"input": input if isinstance(input, str) else list(input)}
    if model is not None:
        body["model"] = model
    return _Call("POST", "/v1/embeddings", Embeddings.from_json, json=body)


def _models() -> _Call[list[ModelSummary]]:
    return _Call("GET", "/v1/models", lambda data: [ModelSummary.from_json(m) for m in data["data"]])


def _model(name: str) -> _Call[ModelDetail]:
    return _Call("GET", f"/v1/models/{quote(name, safe='')}", ModelDetail.from_json)


def _usage(start: date | None, end: date | None, key: str | None) -> _Call[Usage]:
    params = {"from": start.isoformat() if start else None, "to": end.isoformat() if end else None, "key": key}
    return _Call("GET", "/v1/usage", Usage.from_json, params={k: v for k, v in params.items() if v is not None})


class _BaseClient:
    """Configuration and answer handling shared by the sync and async clients."""

    def __init__(self, base_url: str | None, api_key: str | None, timeout: float, max_retries: int) -> None:
        self.base_url = (base_url or os.environ.get("LABELWISE_URL") or DEFAULT_URL).rstrip("/")
        self._api_key = api_key if api_key is not None else (os.environ.get("LABELWISE_API_KEY") or None)
        self.timeout = timeout
        self.retry = RetryPolicy(max_retries=max_retries)

    def __repr__(self) -> str:
        key = "'***'" if self._api_key else "None"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def _headers(self) -> dict[str, str]:
        headers = {"user-agent": f"labelwise-python/{__version__}", "accept": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    def _wait_before_retry(self, call: _Call[Any], attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to wait before trying `call` again, or None to stop here."""
        if attempt >= self.retry.max_retries:
            return None
        if isinstance(outcome, httpx.Response):
            if not self.retry.retries_status(outcome.status_code):
                return None
            return self.retry.delay(attempt, parse_retry_after(outcome.headers.get("retry-after")))
        if isinstance(outcome, httpx.TransportError) and self.retry.retries_error(outcome, call.method):
            return self.retry.delay(attempt)
        return None

    def _error(self, exc: httpx.TransportError) -> LabelwiseAPIError:
        return error_from_transport(exc, self.base_url, api_key=self._api_key)

    def _result(self, call: _Call[T], response: httpx.Response) -> T:
        """The parsed answer, or the error it stands for."""
        if response.status_code >= 400:
            raise error_from_response(response, api_key=self._api_key)
        try:
            return call.parse(response.json())
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabelwiseAPIError(
                scrub(f"{call.method} {call.path}: unexpected response body ({type(exc).__name__})", self._api_key),
                code="invalid_response",
                status_code=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from exc


class Client(_BaseClient):
    """A synchronous client of the Labelwise API.

    `base_url` defaults to `$LABELWISE_URL`, else `http://127.0.0.1:8000`; `api_key` to `$LABELWISE_API_KEY`.
    Answers 429 and 503 are retried up to `max_retries` times, after the server's `Retry-After` or an exponential
    backoff with jitter. Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(base_url, api_key, timeout, max_retries)
        self._sleep = sleep
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers(), timeout=timeout, transport=transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self._http.request(call.method, call.path, json=call.json, params=call.params)
            except httpx.TransportError as exc:
                outcome = exc
            wait = self._wait_before_retry(call, attempt, outcome)
            if wait is None:
                if isinstance(outcome, httpx.TransportError):
                    raise self._error(outcome) from outcome
                return self._result(call, outcome)
            if isinstance(outcome, httpx.Response):
                outcome.close()
            self._sleep(wait)
            attempt += 1

    def classify(
        self,
        text: str,
        *,
        model: str | None = None,
        top_k: int = 3,
        threshold: float = 0.0,
        labels: Sequence[str] | None = None,
        categories: Categories | None = None,
        multi_label: bool | None = None,
    ) -> Classification:
        """Classify one text: the `top_k` best labels at or over `threshold` and the model's decision.

        `labels` (names) or `categories` (key -> description) ask for zero-shot classification with those labels.
        """
        return self._send(_classify(text, _options(model, top_k, threshold, labels, categories, multi_label)))

    def batch(
        self,
        texts: Sequence[str],
        *,
        model: str | None = None,
        top_k: int = 3,
        threshold: float = 0.0,
        labels: Sequence[str] | None = None,
        categories: Categories | None = None,
        multi_label: bool | None = None,
    ) -> BatchResult:
        """Classify several texts (up to the server's `max_batch_texts`, 512 by default) in one request."""
        return self._send(_batch(texts, _options(model, top_k, threshold, labels, categories, multi_label)))

    def embeddings(self, input: str | Sequence[str], *, model: str | None = None) -> Embeddings:
        """One embedding vector per input text (`POST /v1/embeddings`, OpenAI shape)."""
        return self._send(_embeddings(input, model))

    def models(self) -> list[ModelSummary]:
        """Every model with its versions (newest first) and aliases."""
        return self._send(_models())

    def model(self, name: str) -> ModelDetail:
        """One model: each version with its labels in column order, metrics and aliases."""
        return self._send(_model(name))

    def usage(self, *, start: date | None = None, end: date | None = None, key: str | None = None) -> Usage:
        """Usage per key, UTC day and route between `start` and `end` (default: the last 30 days)."""
        return self._send(_usage(start, end, key))


class AsyncClient(_BaseClient):
    """The asynchronous twin of `Client`: the same arguments and methods, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30,
        max_retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        super().__init__(base_url, api_key, timeout, max_retries)
        self._sleep = sleep
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=self._headers(), timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self._http.request(call.method, call.path, json=call.json, params=call.params)
            except httpx.TransportError as exc:
                outcome = exc
            wait = self._wait_before_retry(call, attempt, outcome)
            if wait is None:
                if isinstance(outcome, httpx.TransportError):
                    raise self._error(outcome) from outcome
                return self._result(call, outcome)
            if isinstance(outcome, httpx.Response):
                await outcome.aclose()
            await self._sleep(wait)
            attempt += 1

    async def classify(
        self,
        text: str,
        *,
        model: str | None = None,
        top_k: int = 3,
        threshold: float = 0.0,
        labels: Sequence[str] | None = None,
        categories: Categories | None = None,
        multi_label: bool | None = None,
    ) -> Classification:
        """Classify one text; see `Client.classify`."""
        return await self._send(_classify(text, _options(model, top_k, threshold, labels, categories, multi_label)))

    async def batch(
        self,
        texts: Sequence[str],
        *,
        model: str | None = None,
        top_k: int = 3,
        threshold: float = 0.0,
        labels: Sequence[str] | None = None,
        categories: Categories | None = None,
        multi_label: bool | None = None,
    ) -> BatchResult:
        """Classify several texts in one request; see `Client.batch`."""
        return await self._send(_batch(texts, _options(model, top_k, threshold, labels, categories, multi_label)))

    async def embeddings(self, input: str | Sequence[str], *, model: str | None = None) -> Embeddings:
        """One embedding vector per input text; see `Client.embeddings`."""
        return await self._send(_embeddings(input, model))

    async def models(self) -> list[ModelSummary]:
        """Every model with its versions and aliases."""
        return await self._send(_models())

    async def model(self, name: str) -> ModelDetail:
        """One model with its versions in detail."""
        return await self._send(_model(name))

    async def usage(self, *, start: date | None = None, end: date | None = None, key: str | None = None) -> Usage:
        """Usage per key, UTC day and route; see `Client.usage`."""
        return await self._send(_usage(start, end, key))
