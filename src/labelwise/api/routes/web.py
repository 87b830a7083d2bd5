"""The browser UI: `/` serves the page, `/ui/<file>` its scripts, styles and icons (public: no key needed).

The page holds no data. It talks to the JSON API with the key the user pastes, like any other client. Files are
read once from the installed package (`labelwise/web`) into memory; only names found there are served, so a
request cannot reach any other file. A strict Content-Security-Policy allows scripts, styles and requests to this
origin only, and images from this origin or from blobs (the report plots, fetched with the key).
"""

from __future__ import annotations

import functools
import hashlib
import html
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, Request, Response

from labelwise.api.access import public
from labelwise.errors import NotFound

router = APIRouter(include_in_schema=False)

INDEX = "index.html"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "font-src 'self'; manifest-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # No build step means no hashed file names: revalidate every time; the ETag makes that a 304.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the UI, held in memory."""

    body: bytes
    content_type: str
    etag: str


def _walk(directory: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in directory.iterdir():
        name = prefix + entry.name
        if entry.is_dir():
            found.update(_walk(entry, name + "/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if suffix not in CONTENT_TYPES:
            continue  # editor backups, stray files: not part of the UI
        body = entry.read_bytes()
        found[name] = Asset(body, CONTENT_TYPES[suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return found


@functools.cache
def assets() -> dict[str, Asset]:
    """Every servable file of the UI by its path under `labelwise/web`, read on first use."""
    return _walk(files("labelwise") / "web")


def _respond(asset: Asset, request: Request) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


@functools.cache
def index_page(root_path: str) -> Asset:
    """The page with a `<base>` at `root_path`: its links are relative, so with the base they work under a proxy's
    prefix even when the address has no trailing slash (`/labelwise` as well as `/labelwise/`)."""
    page = assets()[INDEX]
    base = f'<head>\n  <base href="{html.escape(root_path)}/">'.encode()
    body = page.body.replace(b"<head>", base, 1)
    return Asset(body, page.content_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@router.get("/")
@public
async def index(request: Request) -> Response:
    """The single page of the UI."""
    return _respond(index_page(str(request.scope.get("root_path", ""))), request)


@router.get("/ui/{path:path}")
@public
async def asset(path: str, request: Request) -> Response:
    """A script, style sheet or icon of the UI."""
    found = assets().get(path)
    if found is None:
        raise NotFound(f"path: no UI file named {path[:80]!r}", param="path")
    return _respond(found, request)
