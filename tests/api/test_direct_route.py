"""`DirectJSONRoute` answers exactly as FastAPI's own route does, and skips dependency solving when it can."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from labelwise.api.routing import DirectJSONRoute

pytestmark = pytest.mark.anyio


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(max_length=20)
    top_k: int = 3


async def echo(body: Body, request: Request) -> Response:
    return Response(f"{body.text!r} {body.top_k} {request.url.path}", media_type="text/plain")


def _app() -> FastAPI:
    """The same endpoint on a direct route and on FastAPI's default route."""
    app = FastAPI()
    direct = APIRouter(route_class=DirectJSONRoute)
    direct.post("/direct")(echo)
    plain = APIRouter()
    plain.post("/plain")(echo)
    app.include_router(direct)
    app.include_router(plain)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


BODIES: list[tuple[bytes, dict[str, str]]] = [
    (b'{"text": "hello"}', {"content-type": "application/json"}),
    (b'{"text": "hello", "top_k": 5}', {"content-type": "APPLICATION/JSON"}),
    (b'{"text": "hello"}', {"content-type": "application/json; charset=utf-8"}),
    (b'{"text": "hello"}', {"content-type": "application/vnd.api+json"}),
    (b'{"text": "hello"}', {"content-type": "text/plain"}),
    (b'{"text": "hello"}', {}),
    (b'{"text": "\\ud800"}', {"content-type": "application/json"}),  # orjson refuses; the standard library reads
    (b'{"text": "x", "top_k": NaN}', {"content-type": "application/json"}),
    (b'{"text": "' + b"y" * 21 + b'"}', {"content-type": "application/json"}),
    (b'{"text": "x", "extra": 1}', {"content-type": "application/json"}),
    (b'{"text": "x", "top_k": "3"}', {"content-type": "application/json"}),
    (b'{"text": 5}', {"content-type": "application/json"}),
    (b"[1, 2]", {"content-type": "application/json"}),
    (b'{"text": ', {"content-type": "application/json"}),
    (b"[" * 5000 + b"]" * 5000, {"content-type": "application/json"}),
    (b"", {"content-type": "application/json"}),
    (b'{"text": "\xff"}', {"content-type": "application/json"}),
]


@pytest.mark.parametrize(("content", "headers"), BODIES)
async def test_answers_as_fastapis_own_route(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str]
) -> None:
    direct = await _outcome(client, "/direct", content, headers)
    plain = await _outcome(client, "/plain", content, headers)
    assert direct == plain


async def _outcome(client: httpx.AsyncClient, path: str, content: bytes, headers: dict[str, str]) -> tuple[Any, ...]:
    """Status and body (the path made neutral), or the exception that escaped the app (this bare app has no
    handler for a body it cannot encode back, such as NaN or a lone surrogate)."""
    try:
        r = await client.post(path, content=content, headers=headers)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    return (r.status_code, r.content.replace(path.encode(), b"/route"))


async def test_a_valid_json_body_skips_dependency_solving(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await original(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    ok = await client.post("/direct", json={"text": "hi"})
    bad = await client.post("/direct", json={"text": 5})
    assert (ok.status_code, ok.text) == (200, "'hi' 3 /direct")
    assert bad.status_code == 422
    assert solved == ["/direct"]  # only the invalid body went through FastAPI's handler
    await client.post("/plain", json={"text": "hi"})
    assert solved == ["/direct", "/plain"]


def test_an_endpoint_of_another_shape_is_refused() -> None:
    async def with_query(body: Body, request: Request, limit: int = 3) -> Response:
        return Response()

    async def without_request(body: Body) -> Response:
        return Response()

    for endpoint in (with_query, without_request):
        router = APIRouter(route_class=DirectJSONRoute)
        with pytest.raises(TypeError, match="one body model and the request"):
            router.post("/x")(endpoint)
