"""Which `LABELWISE_*` names a deployment file may use: the fields of `Settings`, plus the client's own variables."""

from __future__ import annotations

import re
from pathlib import Path

from labelwise.config import Settings

REPO = Path(__file__).resolve().parents[2]
_NAME = re.compile(r"\bLABELWISE_[A-Z0-9_]+\b")

# Read by the `labelwise` client commands and the Python client, not by servers: a deployment may hand them to a
# client container. Each must still appear in the client's source (checked in the tests), so this list cannot rot.
CLIENT_VARIABLES = {"LABELWISE_API_KEY": "cli/serve_cmd.py", "LABELWISE_URL": "cli/client_cmd.py"}


def names_in(text: str) -> set[str]:
    """Every `LABELWISE_*` name written in `text` (keys, values and comments alike)."""
    return set(_NAME.findall(text))


def unknown_settings(names: set[str]) -> list[str]:
    """The names that are neither a field of `Settings` (LABELWISE_ + the field's name in capitals) nor a client's."""
    fields = {f"LABELWISE_{name.upper()}" for name in Settings.model_fields}
    return sorted(name for name in names if name not in fields and name not in CLIENT_VARIABLES)
