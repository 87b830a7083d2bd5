"""The Label Studio client over the official SDK, against an in-process fake Label Studio (httpx.MockTransport):
the calls it makes, and every failure mapped to our errors naming the field, never carrying the token. (A real
Label Studio answers the same calls in tests/integration/test_label_studio.py.)"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import httpx
import pytest

from labelwise.errors import FeatureUnavailable, InvalidRequest, UpstreamUnavailable
from labelwise.services.labelstudio import LabelStudioClient

TOKEN = "fedcba9876543210fedcba9876543210fedcba98"
URL = "http://studio.test"

Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler) -> LabelStudioClient:
    return LabelStudioClient(URL, TOKEN, transport=httpx.MockTransport(handler))


def test_the_calls_carry_the_token_and_the_tasks() -> None:
    seen: list[httpx.Request] = []

    def studio(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        path = request.url.path.rstrip("/")
        if path == "/api/projects/7/import":
            return httpx.Response(201, json={"task_count": len(json.loads(request.content))})
        if path == "/api/projects/7/export":
            return httpx.Response(200, json=[{"id": 1, "data": {"text": "hi"}, "annotations": []}])
        return httpx.Response(200, json={"id": 7, "title": "review"})

    client = _client(studio)
    try:
        client.project(7)
        assert client.import_tasks(7, [{"data": {"text": "a"}}, {"data": {"text": "b"}}]) == 2
        assert client.export(7) == [{"id": 1, "data": {"text": "hi"}, "annotations": []}]
    finally:
        client.close()
    paths = [r.url.path.rstrip("/") for r in seen]
    assert paths == ["/api/projects/7", "/api/projects/7/import", "/api/projects/7/export"]
    assert all(r.headers["authorization"] == f"Token {TOKEN}" for r in seen)
    assert json.loads(seen[1].content) == [{"data": {"text": "a"}}, {"data": {"text": "b"}}]
    # Every task, annotated or not: the import counts the unannotated ones.
    assert seen[2].url.params["export_type"] == "JSON"
    assert seen[2].url.params["download_all_tasks"] == "true"


@pytest.mark.parametrize(
    ("status", "error", "param"),
    [
        (401, InvalidRequest, "label_studio"),
        (403, InvalidRequest, "label_studio"),
        (404, InvalidRequest, "project"),
        (400, InvalidRequest, "project"),
        (502, UpstreamUnavailable, "label_studio"),
    ],
)
def test_refusals_are_mapped_and_name_the_field(status: int, error: type[Exception], param: str) -> None:
    client = _client(lambda request: httpx.Response(status, json={"detail": f"token {TOKEN} refused"}))
    try:
        # The import is the one call the SDK does not retry (a retry could create the tasks twice).
        with pytest.raises(error) as caught:
            client.import_tasks(3, [{"data": {"text": "a"}}])
    finally:
        client.close()
    assert isinstance(caught.value, InvalidRequest | UpstreamUnavailable)
    assert caught.value.param == param
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None  # the SDK's error, which carries Label Studio's answer, is not chained


def test_an_unreachable_label_studio_is_upstream_unavailable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = _client(down)
    try:
        with pytest.raises(UpstreamUnavailable, match=r"cannot reach http://studio\.test"):
            client.project(1)
    finally:
        client.close()


def test_an_export_that_is_not_a_list_of_tasks_is_refused() -> None:
    client = _client(lambda request: httpx.Response(200, content=b"<html>sign in</html>"))
    try:
        with pytest.raises(UpstreamUnavailable, match="not a JSON list of tasks"):
            client.export(1)
    finally:
        client.close()


def test_a_url_that_is_not_http_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest, match="label_studio: 'ftp://studio' is not an http"):
        LabelStudioClient("ftp://studio", TOKEN)


def test_without_the_sdk_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "label_studio_sdk.client", None)  # what an environment without it imports
    with pytest.raises(FeatureUnavailable, match=r"pip install 'labelwise\[labelstudio\]'") as raised:
        LabelStudioClient(URL, TOKEN)
    assert raised.value.http_status == 501  # not a server failure: this installation lacks the extra
