"""`labelwise migrate` (the Kubernetes migration Job's command) brings an empty database to the newest schema."""

from __future__ import annotations

import json
import os

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
