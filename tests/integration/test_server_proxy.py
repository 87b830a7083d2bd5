"""A real `labelwise serve` (its default workers) behind a path prefix and called from browser pages of another
origin: `LABELWISE_ROOT_PATH` and `LABELWISE_CORS_ORIGINS`.

The prefix works whether a proxy strips it or forwards the path as it is (both are requested directly here): the
docs, the OpenAPI document, the web UI and every file the UI links to or imports answer under it, and access
rules apply to the path inside the prefix."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.api.serving_fakes import Fixture, make_settings, reset_keyword_engine
from tests.integration.real_server import labelwise_serve

PREFIX = "/labelwise"
ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL without the prefix, classify key) of a server with the keyword model `intents`."""
    reset_keyword_engine()
    data = tmp_path_factory.mktemp("proxy") / "data"
    data.mkdir()
    fixture = Fixture(make_settings(data, f"sqlite:///{data / 'labelwise.db'}"))
    key = fixture.key("classify")
    fixture.close()
    env = {
        "LABELWISE_DATA_DIR": str(data),
        "LABELWISE_LOG_LEVEL": "WARNING",
        "LABELWISE_ROOT_PATH": PREFIX + "/",  # a trailing slash is forgiven
        "LABELWISE_CORS_ORIGINS": json.dumps([ALLOWED]),
    }
    with labelwise_serve(env, root_path=PREFIX) as running:
        yield running.base, key


@pytest.mark.parametrize("through", [PREFIX, ""], ids=["prefix-kept", "prefix-stripped"])
def test_docs_and_the_openapi_document_under_the_prefix(server: tuple[str, str], through: str) -> None:
    base, _ = server
    docs = httpx.get(f"{base}{through}/docs")
    assert docs.status_code == 200
    assert f"'{PREFIX}/openapi.json'" in docs.text or f'"{PREFIX}/openapi.json"' in docs.text
    document = httpx.get(f"{base}{through}/openapi.json").json()
    assert document["servers"] == [{"url": PREFIX}]  # "try it out" calls go through the prefix
    assert httpx.get(f"{base}{through}/health").status_code == 200


@pytest.mark.parametrize("page", [PREFIX, PREFIX + "/"])
def test_every_file_of_the_ui_loads_under_the_prefix(server: tuple[str, str], page: str) -> None:
    base, _ = server
    index = httpx.get(base + page)
    assert index.status_code == 200
    assert f'<base href="{PREFIX}/">' in index.text
    page_base = urljoin(base + page, f"{PREFIX}/")  # what the browser resolves relative links against
    pending = [urljoin(page_base, link) for link in re.findall(r'(?:href|src)="([^"#][^"]*)"', index.text)]
    seen: set[str] = set()
    while pending:  # the page's links, then every module the scripts import, transitively
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        assert urlsplit(url).path.startswith(PREFIX + "/"), url
        answer = httpx.get(url)
        assert answer.status_code == 200, url
        if url.endswith(".js"):
            pending += [urljoin(url, module) for module in re.findall(r"from '(\.{1,2}/[^']+)'", answer.text)]
    assert any(url.endswith("/ui/js/main.js") for url in seen)
    assert len([url for url in seen if url.endswith(".js")]) > 5


def test_the_api_and_its_access_rules_under_the_prefix(server: tuple[str, str]) -> None:
    base, key = server
    headers = {"x-api-key": key}
    answer = httpx.post(f"{base}{PREFIX}/v1/classify", json={"text": "my card", "model": "nope"}, headers=headers)
    assert (answer.status_code, answer.json()["error"]["param"]) == (404, "model")
    # The classify-only key is refused an admin route whichever way the prefix arrives.
    for path in (f"{PREFIX}/v1/keys", "/v1/keys"):
        assert httpx.get(base + path, headers=headers).status_code == 403
    assert httpx.get(f"{base}{PREFIX}/v1/models").status_code == 401


def test_cors_for_the_allowed_origin_only(server: tuple[str, str]) -> None:
    base, key = server
    url = f"{base}{PREFIX}/v1/classify"
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key, content-type"}
    allowed = httpx.options(url, headers={"Origin": ALLOWED, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    other = httpx.options(url, headers={"Origin": "https://elsewhere.example", **preflight})
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers

    answer = httpx.post(url, json={"text": "my card"}, headers={"Origin": ALLOWED, "x-api-key": key})
    assert answer.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in answer.headers["access-control-expose-headers"].lower()
    refused = httpx.post(url, json={"text": "my card"}, headers={"Origin": ALLOWED})  # errors are readable too
    assert (refused.status_code, refused.headers["access-control-allow-origin"]) == (401, ALLOWED)
