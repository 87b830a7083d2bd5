"""A database outage (`StorageUnavailable`) in each API surface's error shape, always 503 with `Retry-After`, also
when it reaches the last-resort handler from a middleware. The outage itself, end to end, is
tests/integration/test_postgres_outage.py."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from labelwise.api.errors import labelwise_error_response, send_internal_error
from labelwise.errors import StorageUnavailable
from labelwise.storage.db import RETRY_AFTER_SECONDS, UNAVAILABLE_MESSAGE

OUTAGE = StorageUnavailable(UNAVAILABLE_MESSAGE, retry_after=RETRY_AFTER_SECONDS)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/usage", {"error": {"code": "storage_unavailable", "param": None, "request_id": "req_1"}}),
        ("/v1/embeddings", {"error": {"code": "storage_unavailable", "type": "server_error", "param": None}}),
        ("/classify", {"error": {"code": 503, "type": "server_error", "param": None}}),
        ("/text/classification", {"code": "TEXT_CLASSIFICATION_ERROR"}),
    ],
    ids=["native", "openai", "vllm", "categories"],
)
def test_storage_unavailable_is_503_with_retry_after_in_each_shape(path: str, body: dict[str, Any]) -> None:
    response = labelwise_error_response(OUTAGE, "req_1", path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    sent = orjson.loads(response.body)
    for field, value in body.items():
        if isinstance(value, dict):
            assert {k: sent[field][k] for k in value} == value
            assert sent[field]["message"] == UNAVAILABLE_MESSAGE
        else:
            assert sent[field] == value


def test_an_outage_under_a_middleware_is_503_not_500(caplog: pytest.LogCaptureFixture) -> None:
    """The key lookup of the auth middleware runs outside the app's handlers; its outage is no bug to log."""
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(send_internal_error(send, OUTAGE, "req_2", "/v1/classify"))
    start, body = messages
    assert start["status"] == 503
    assert (b"retry-after", str(RETRY_AFTER_SECONDS).encode()) in start["headers"]
    assert orjson.loads(body["body"])["error"]["code"] == "storage_unavailable"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
