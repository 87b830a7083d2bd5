"""The review queue's Label Studio routes without a Label Studio: configuration errors name the setting, an
unreachable Label Studio is 503 with Retry-After, bad bodies name the field. (The round trip through a real Label
Studio is tests/integration/test_label_studio.py.)"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, Running, started

pytestmark = pytest.mark.anyio


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.fixture
async def nowhere(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    fx.publish("intents")
    configured = settings.model_copy(
        update={
            "label_studio_url": f"http://127.0.0.1:{_closed_port()}",
            "label_studio_token": SecretStr("not-a-real-token"),
        }
    )
    async with started(configured) as item:
        yield item


async def test_an_unreachable_label_studio_is_503_with_retry_after(nowhere: Running, fx: Fixture) -> None:
    admin = {"x-api-key": fx.key("admin")}
    for route in ("/v1/review/label-studio/export", "/v1/review/label-studio/import"):
        r = await nowhere.client.post(route, json={"model": "intents", "project": 1}, headers=admin)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"]
        assert r.json()["error"]["code"] == "upstream_unavailable"
        assert "not-a-real-token" not in r.text


async def test_no_label_studio_configured_names_the_setting(running: Running, fx: Fixture) -> None:
    admin = {"x-api-key": fx.key("admin")}
    r = await running.client.post(
        "/v1/review/label-studio/export", json={"model": "intents", "project": 1}, headers=admin
    )
    assert r.status_code == 400, r.text
    assert "LABELWISE_LABEL_STUDIO_URL" in r.json()["error"]["message"]


async def test_bad_bodies_name_the_field(nowhere: Running, fx: Fixture) -> None:
    admin = {"x-api-key": fx.key("admin")}
    route = "/v1/review/label-studio/export"
    for body, field in (
        ({"model": "intents", "project": 0}, "project"),
        ({"model": "intents", "project": 1, "limit": 501}, "limit"),
        ({"model": "ghost", "project": 1}, "model"),
    ):
        r = await nowhere.client.post(route, json=body, headers=admin)
        assert r.status_code in (400, 404), r.text
        assert r.json()["error"]["param"] == field, r.text
