"""`DirectJSONRoute`: a FastAPI route for the hot paths that calls its endpoint without solving dependencies.

FastAPI's request handler parses the content type with the `email` package, decodes JSON with the standard library
and solves the dependency graph on every request: for a one-text classify that was about a fifth of the request's
CPU time. A direct route handles the common case itself: a body sent as `application/json` that orjson decodes and
the body model accepts. Everything else (another or no content type, JSON that orjson refuses but the standard
library reads, such as lone surrogate escapes or `NaN`, and every body that fails validation) is handed to FastAPI's
own handler with the body already read, so errors and edge cases behave exactly as on every other route.

The OpenAPI document is FastAPI's as well: the route is declared as any other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_JSON = b"application/json"


class DirectJSONRoute(APIRoute):
    """An `APIRoute` whose endpoint takes exactly a body model and the `Request`, and returns a `Response`.

    Declare it with `APIRouter(route_class=DirectJSONRoute)`; an endpoint of any other shape is refused when the
    route is built, so a new parameter cannot be silently ignored.
    """

    def get_route_handler(self) -> Handler:
        fallback = super().get_route_handler()
        dependant = self.dependant
        endpoint = self.endpoint
        others = (
            dependant.path_params,
            dependant.query_params,
            dependant.header_params,
            dependant.cookie_params,
            dependant.dependencies,
        )
        model = dependant.body_params[0].field_info.annotation if len(dependant.body_params) == 1 else None
        if (
            any(others)
            or dependant.request_param_name is None
            or not (isinstance(model, type) and issubclass(model, BaseModel))
            or not inspect.iscoroutinefunction(endpoint)
        ):
            raise TypeError(f"{self.path}: a direct route's endpoint takes one body model and the request only")
        body_name, request_name = dependant.body_params[0].name, dependant.request_param_name
        validate = model.model_validate

        async def handler(request: Request) -> Response:
            if _content_type(request) != _JSON:
                return await fallback(request)
            try:
                raw = await request.body()  # kept by the request: the fallback reads the same bytes
            except HTTPException:
                raise
            except Exception as exc:  # a client gone mid-body: answered as FastAPI's handler answers it
                raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
            try:
                body = validate(orjson.loads(raw))
            except (orjson.JSONDecodeError, ValidationError):
                return await fallback(request)
            response: Response = await endpoint(**{body_name: body, request_name: request})
            return response

        return handler


def _content_type(request: Request) -> bytes | None:
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            return value.lower()  # type: ignore[no-any-return]
    return None
