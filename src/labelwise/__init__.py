"""Labelwise: train, evaluate and serve calibrated text classifiers.

`labelwise.Client` and `labelwise.AsyncClient` (the API client) are imported on first use, so `import labelwise`
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "__version__"]

if TYPE_CHECKING:
    from labelwise.client import AsyncClient, Client


def __getattr__(name: str) -> Any:
    if name in ("Client", "AsyncClient"):
        from labelwise import client

        return getattr(client, name)
    raise AttributeError(f"module 'labelwise' has no attribute {name!r}")
