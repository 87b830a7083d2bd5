"""Authorization fails closed: every route declares who may call it (api/access.py), and the auth layer refuses
a route that declares nothing, whatever the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts

from labelwise.api import create_app
from labelwise.api.access import PUBLIC, Access, AccessTable, any_key, declared, public, requires
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from labelwise.services.keys import Scope
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio

# What each route needed before the declarations existed (the prefix table and the handlers' own checks): the
# declarations must keep every one of them.
EXPECTED = {
    ("GET", "/openapi.json"): "public",
    ("GET", "/docs"): "public",
    ("GET", "/docs/oauth2-redirect"): "public",
    ("GET", "/redoc"): "public",
    ("GET", "/health"): "public",
    ("GET", "/ready"): "public",
    ("GET", "/"): "public",
    ("GET", "/ui/{path:path}"): "public",
    ("POST", "/v1/classify"): "classify",
    ("POST", "/v1/batch"): "classify",
    ("GET", "/v1/models"): "classify",
    ("GET", "/v1/models/{name}"): "classify",
    ("GET", "/v1/models/{name}/versions/{version}/report"): "classify",
    ("GET", "/v1/models/{name}/versions/{version}/report/{plot}.png"): "classify",
    ("GET", "/v1/models/{name}/drift"): "classify",
    ("PUT", "/v1/models/{name}/aliases/{alias}"): "admin",
    ("DELETE", "/v1/models/{name}/aliases/{alias}"): "admin",
    ("POST", "/v1/models"): "train",
    ("POST", "/v1/keys"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("GET", "/v1/keys/{prefix}"): "admin",
    ("PATCH", "/v1/keys/{prefix}"): "admin",
    ("DELETE", "/v1/keys/{prefix}"): "admin",
    ("GET", "/v1/usage"): "any key",
    ("POST", "/v1/embeddings"): "classify",
    ("POST", "/classify"): "classify",
    ("POST", "/invocations"): "classify",
    ("POST", "/pooling"): "classify",
    ("POST", "/text/classification"): "classify",
    ("POST", "/classification"): "classify",
    ("GET", "/metrics"): "admin",
    ("POST", "/v1/feedback"): "classify",
    ("GET", "/v1/review"): "admin",
    ("POST", "/v1/review/label-studio/export"): "admin",
    ("POST", "/v1/review/label-studio/import"): "admin",
    ("POST", "/v1/jobs"): "classify",
    ("GET", "/v1/jobs"): "any key",
    ("GET", "/v1/jobs/{job_id}"): "any key",
    ("GET", "/v1/jobs/{job_id}/results"): "any key",
    ("DELETE", "/v1/jobs/{job_id}"): "any key",
    ("POST", "/v1/generate"): "generate",
    ("POST", "/v1/generate/stream"): "generate",
    ("POST", "/v1/chat/completions"): "generate",
}


def declarations(settings: Settings) -> dict[tuple[str, str], str]:
    """(method, path) -> the declared access of every route of the app (HEAD left out: it follows GET)."""
    app = create_app(settings)
    found: dict[tuple[str, str], str] = {}
    for route in iter_route_contexts(app.routes):
        assert route.path is not None
        access = declared(route.endpoint)
        assert access is not None, f"{route.path} ({route.name}) declares no access: add @public, @any_key or @requires"
        for method in route.methods or ():
            if method != "HEAD":
                found[(method, route.path)] = access.describe()
    return found


def test_every_route_declares_its_access(tmp_path: Path) -> None:
    assert declarations(make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'db.sqlite'}")) == EXPECTED


async def test_a_route_without_a_declaration_is_refused_even_to_admin(settings: Settings, fx: Fixture) -> None:
    fx.publish("intents")
    admin = {"x-api-key": fx.key("admin")}
    async with started(settings) as running:

        @running.app.get("/v1/undeclared")
        async def undeclared() -> dict[str, str]:
            return {"secret": "leaked"}

        @running.app.get("/v1/declared")
        @any_key
        async def declared_route() -> dict[str, str]:
            return {"fine": "yes"}

        r = await running.client.get("/v1/undeclared", headers=admin)
        assert r.status_code == 403, r.text
        assert ErrorResponse.model_validate(r.json()).error.code == "forbidden"
        assert "leaked" not in r.text
        assert (await running.client.get("/v1/undeclared")).status_code == 401
        assert (await running.client.get("/v1/declared", headers=admin)).json() == {"fine": "yes"}


async def test_scopes_are_enforced_as_declared(running: Running, fx: Fixture) -> None:
    trainer = {"x-api-key": fx.key("train")}
    classifier = {"x-api-key": fx.key("classify")}
    for method, path, headers in [
        ("GET", "/metrics", classifier),
        ("GET", "/v1/review", classifier),
        ("POST", "/v1/feedback", trainer),
        ("GET", "/v1/keys", classifier),
        ("PUT", "/v1/models/intents/aliases/canary", classifier),
    ]:
        r = await running.client.request(method, path, json={}, headers=headers)
        assert r.status_code == 403, (method, path, r.text)
    assert (await running.client.get("/v1/usage", headers=trainer)).status_code == 200
    assert (await running.client.get("/v1/jobs", headers=trainer)).status_code == 200


async def test_metrics_public_is_the_one_override(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url, metrics_public=True)
    fixture = Fixture(settings)
    try:
        fixture.publish("intents")
        async with started(settings) as running:
            assert (await running.client.get("/metrics")).status_code == 200
            assert (await running.client.get("/v1/review")).status_code == 401
    finally:
        fixture.close()


def test_table_lookup() -> None:
    class App:
        def __init__(self) -> None:
            from fastapi import FastAPI

            self.api = FastAPI()

            @self.api.get("/open")
            @public
            async def open_() -> None: ...

            @self.api.post("/items/{item}")
            @requires(Scope.ADMIN)
            async def item() -> None: ...

            @self.api.get("/bare")
            async def bare() -> None: ...

    api = App().api
    table = AccessTable()
    assert table.lookup(api, "/open", "GET") == PUBLIC
    assert table.lookup(api, "/items/3", "POST") == Access(scope="admin")
    assert table.lookup(api, "/items/3", "GET") == Access(scope="admin")  # the router answers 405 after auth
    assert table.lookup(api, "/bare", "GET") is None
    assert table.lookup(api, "/nowhere", "GET") == Access()  # a valid key, then the router's 404
    assert AccessTable({"/bare": PUBLIC}).lookup(api, "/bare", "GET") == PUBLIC
