"""Property tests through the whole app: any unicode text is answered, never with a 500."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from labelwise.api.schemas.classify import BatchResponse, ClassifyResponse
from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, started

Call = Callable[..., httpx.Response]


@pytest.fixture
def call(settings: Settings, fx: Fixture) -> Iterator[Call]:
    """A blocking `request(method, url, **kw)` against an app running in a background event loop."""
    fx.publish("intents")
    key = fx.key()
    with start_blocking_portal("asyncio") as portal, portal.wrap_async_context_manager(started(settings)) as app:

        def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
            headers = {"x-api-key": key, "content-type": "application/json"}
            return portal.call(partial(app.client.request, method, url, headers=headers, **kwargs))

        yield request


# Any code point, lone surrogates included; JSON cannot carry those raw, so they are sent as \\u escapes.
TEXTS = st.text(alphabet=st.characters(codec=None), max_size=300)


def as_json(payload: object) -> bytes:
    return json.dumps(payload, ensure_ascii=True).encode()


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS)
def test_any_text_is_classified_or_refused_never_500(call: Call, text: str) -> None:
    r = call("POST", "/v1/classify", content=as_json({"text": text}))
    assert r.status_code in (200, 400), r.text
    if text and r.status_code == 200:
        ClassifyResponse.model_validate(r.json())
    if not text:
        assert r.status_code == 400


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXTS.filter(bool), min_size=1, max_size=20))
def test_batch_equals_one_by_one(call: Call, texts: list[str]) -> None:
    batch = BatchResponse.model_validate(call("POST", "/v1/batch", content=as_json({"texts": texts})).json())
    for text, item in zip(texts, batch.results, strict=True):
        single = ClassifyResponse.model_validate(call("POST", "/v1/classify", content=as_json({"text": text})).json())
        assert (single.labels, single.predicted) == (item.labels, item.predicted)
