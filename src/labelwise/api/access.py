"""Who may call each route. Every route declares it beside its handler; the auth middleware reads the declarations.

    @router.get("/v1/keys")
    @requires(Scope.ADMIN)
    async def list_keys(...): ...

A declaration is `public` (no key), `any_key` (a valid key, whatever its scopes) or `requires(scope)`. Authorization
fails closed: a route without a declaration is refused with 403 even for an admin key, and
`tests/api/test_access.py` fails for any route of the app that has none. The framework's own routes (the OpenAPI
document and the docs pages) are declared public by `declare_framework_routes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import Scope

from labelwise.services.keys import Scope as KeyScope

_ATTRIBUTE = "__labelwise_access__"
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Access:
    """What a route needs: nothing (`public`), any valid key (`scope` None), or a key with `scope`."""

    public: bool = False
    scope: str | None = None

    def describe(self) -> str:
        return "public" if self.public else self.scope or "any key"


PUBLIC = Access(public=True)
ANY_KEY = Access()


def declare(access: Access) -> Callable[[_Endpoint], _Endpoint]:
    """Mark a handler with what its route needs; put it under the `@router.<method>` decorator."""

    def mark(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _ATTRIBUTE, access)
        return endpoint

    return mark


def public(endpoint: _Endpoint) -> _Endpoint:
    """The route needs no key."""
    return declare(PUBLIC)(endpoint)


def any_key(endpoint: _Endpoint) -> _Endpoint:
    """The route needs a valid key of any scope (what it shows is limited to that key's own data)."""
    return declare(ANY_KEY)(endpoint)


def requires(scope: KeyScope) -> Callable[[_Endpoint], _Endpoint]:
    """The route needs a key with `scope` (an admin key has every scope)."""
    return declare(Access(scope=scope.value))


def declared(endpoint: object) -> Access | None:
    """The declaration on a handler, or None when it has none."""
    access = getattr(endpoint, _ATTRIBUTE, None)
    return access if isinstance(access, Access) else None


def declare_framework_routes(routes: Iterable[BaseRoute]) -> None:
    """Declare FastAPI's own routes (`/openapi.json`, `/docs`, `/redoc`, the OAuth2 redirect) public: they are the
    only handlers we do not write. Called by the app once FastAPI has added them, before any of ours."""
    for context in iter_route_contexts(list(routes)):
        if context.endpoint is not None and declared(context.endpoint) is None:
            public(context.endpoint)


# What `AccessTable.lookup` answers for a path no route serves: it needs a valid key and then gets the router's
# 404 (as before this table existed, an unknown path tells an anonymous caller nothing).
UNROUTED = ANY_KEY


def route_path(scope: Scope) -> str:
    """The path the router matches: the request path without the app's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class AccessTable:
    """Each route's declaration, by method and path, from the app's routes (rebuilt when routes are added).

    Paths without parameters are one dictionary probe, so the hot routes pay no regular expression.
    """

    def __init__(self, overrides: Mapping[str, Access] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self._built_for = -1
        self._static: dict[tuple[str, str], Access | None] = {}
        self._static_paths: dict[str, Access | None] = {}
        self._patterns: list[tuple[Any, frozenset[str], Access | None]] = []

    def lookup(self, app: Any, path: str, method: str) -> Access | None:
        """The access `method path` needs; None when the route that serves it declares nothing."""
        routes = app.routes
        if len(routes) != self._built_for or (not self._static and not self._patterns):
            self._build(routes)
        if (method, path) in self._static:
            return self._static[(method, path)]
        for regex, methods, access in self._patterns:
            if regex.match(path) and (not methods or method in methods):
                return access
        # The path exists for another method (the router answers 405): it needs what the path's routes need.
        if path in self._static_paths:
            return self._static_paths[path]
        for regex, _, access in self._patterns:
            if regex.match(path):
                return access
        return UNROUTED

    def _build(self, routes: list[BaseRoute]) -> None:
        self._static.clear()
        self._static_paths.clear()
        self._patterns.clear()
        for context in iter_route_contexts(routes):
            path = context.path
            if path is None:
                continue
            access = self.overrides.get(path) or declared(context.endpoint)
            methods = frozenset(context.methods or ())
            if "{" in path:
                self._patterns.append((context.path_regex, methods, access))
                continue
            for method in methods:
                self._static.setdefault((method, path), access)
            self._static_paths.setdefault(path, access)
        self._built_for = len(routes)
