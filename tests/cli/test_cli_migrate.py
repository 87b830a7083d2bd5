"""`labelwise migrate` (the Kubernetes migration Job's command) brings an empty database to the newest schema, and
the CLI honours LABELWISE_ENCODER_DIR as the server does (the container image's worker relies on both)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import inspect
from tests.cli.conftest import Run

from labelwise.storage.db import Database


def test_migrate_creates_the_schema_once(run: Run) -> None:
    url = os.environ["LABELWISE_DATABASE_URL"]
    code, out, _ = run("migrate", "--json")
    assert code == 0
    assert json.loads(out) == {"migrated": True}
    db = Database(url)
    try:
        assert db.at_heads()
        assert {"api_keys", "model_versions"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
    code, out, _ = run("migrate")  # idempotent
    assert code == 0
    assert "up to date" in out


def test_cli_uses_the_configured_encoder_directory(tmp_path: Path) -> None:
    # The image ships the encoder derived in /opt/labelwise/encoder; a `labelwise worker` there must use it too.
    from labelwise.bootstrap import Container
    from labelwise.config import Settings
    from labelwise.encoder import LazyEncoder

    store = Container(Settings(data_dir=tmp_path / "data", encoder_dir=tmp_path / "encoder")).store
    assert isinstance(store.encoder, LazyEncoder)
    assert store.encoder.cache_dir == tmp_path / "encoder"
    store = Container(Settings(data_dir=tmp_path / "data", encoder_dir=None)).store
    assert isinstance(store.encoder, LazyEncoder)
    assert store.encoder.cache_dir == tmp_path / "data" / "encoder"
