"""The OpenAPI document is snapshotted: any change to a route, a schema or a docstring shows up in review.

After an intended change, regenerate the snapshot and commit it with the change:

    LABELWISE_UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/api/test_openapi_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from labelwise.api import create_app
from tests.api.serving_fakes import make_settings

SNAPSHOT = Path(__file__).with_name("openapi.snapshot.json")


def render(document: object) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_openapi_document_matches_the_snapshot(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'labelwise.db'}"))
    current = render(app.openapi())
    if os.environ.get("LABELWISE_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(current, encoding="utf-8")
    assert SNAPSHOT.is_file(), f"no snapshot: run LABELWISE_UPDATE_SNAPSHOT=1 pytest {Path(__file__).name}"
    committed = SNAPSHOT.read_text(encoding="utf-8")
    assert current == committed, (
        "the OpenAPI document changed; if intended, run "
        f"LABELWISE_UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/api/{Path(__file__).name} and commit the snapshot"
    )


def test_every_compatible_surface_is_documented(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'labelwise.db'}"))
    paths = app.openapi()["paths"]
    for path in ("/v1/classify", "/v1/batch", "/v1/embeddings", "/classify", "/text/classification", "/classification"):
        assert "post" in paths[path], path
