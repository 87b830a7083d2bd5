"""The HTTP API: `create_app(settings)` builds the ASGI app, `serve(settings, workers)` runs it under uvicorn.

Both are imported on first use: the multi-worker parent process only migrates and supervises, so it should not pay
for importing the web framework that only its workers need (this shortens start to ready).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labelwise.api.app import create_app
    from labelwise.api.server import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from labelwise.api.app import create_app

        return create_app
    if name == "serve":
        from labelwise.api.server import serve

        return serve
    raise AttributeError(f"module 'labelwise.api' has no attribute {name!r}")
