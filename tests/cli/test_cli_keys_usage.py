"""`labelwise keys create/update` with limits and credits, and `labelwise usage`, in-process through `main()`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.cli.conftest import Run

from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository, UsageEntry, UsageRepository


def ok(run: Run, *args: str) -> Any:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_keys_create_and_update_settings(run: Run, database_url: str) -> None:
    created = ok(
        run, "keys", "create", "--name", "svc", "--rate-limit", "5 per second", "--credits", "100", "--expires", "30d"
    )
    assert (created["rate_limit"], created["credits"], created["status"]) == ("5/second", 100, "active")
    expires = datetime.fromisoformat(created["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    prefix = created["prefix"]
    assert ok(run, "keys", "update", prefix, "--add-credits", "50")["credits"] == 150
    changed = ok(run, "keys", "update", prefix, "--credits", "unlimited", "--rate-limit", "default", "--disable")
    assert (changed["credits"], changed["rate_limit"], changed["status"]) == (None, None, "disabled")
    changed = ok(run, "keys", "update", prefix, "--enable", "--expires", "never", "--scope", "train", "--name", "n")
    assert (changed["status"], changed["expires_at"], changed["scopes"], changed["name"]) == (
        "active",
        None,
        ["train"],
        "n",
    )
    db = Database(database_url)
    try:
        rows = [r for r in KeyRepository(db).audit_log() if r.target == prefix]
    finally:
        db.dispose()
    assert [r.action for r in rows] == ["key.update", "key.update", "key.update", "key.create"]
    assert {r.actor for r in rows} == {"cli"}
    assert rows[2].details == {"add_credits": 50, "balance": 150}


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("--rate-limit", "fast"), 1, "rate_limit:"),
        (("--credits", "lots"), 2, "--credits"),
        (("--expires", "soon"), 2, "--expires"),
        (("--expires", "2001-01-01"), 1, "in the past"),
        (("--credits", "5", "--add-credits", "5"), 2, "either --credits or --add-credits"),
    ],
)
def test_keys_update_errors(run: Run, args: tuple[str, ...], code: int, words: str) -> None:
    prefix = ok(run, "keys", "create")["prefix"]
    got, _, err = run("keys", "update", prefix, *args)
    assert got == code, err
    assert words in err
    assert run("keys", "update", "00000000", "--name", "x")[0] == 1


def test_usage_table_and_json(run: Run, database_url: str) -> None:
    ok(run, "keys", "list")  # migrates the database
    today = datetime.now(UTC).date()
    db = Database(database_url)
    try:
        UsageRepository(db).add(
            [
                UsageEntry("aaaa1111", today, "/v1/classify", 3, 3, 30, 3),
                UsageEntry("bbbb2222", today, "/v1/batch", 1, 8, 80, 40),
                UsageEntry("aaaa1111", today - timedelta(days=3), "/v1/batch", 2, 4, 40, 4),
            ]
        )
    finally:
        db.dispose()
    report = ok(run, "usage")
    assert report["total"] == {"requests": 6, "texts": 15, "characters": 150, "credits": 47}
    assert ok(run, "usage", "--key", "aaaa1111", "--days", "1")["total"]["texts"] == 3
    code, out, _ = run("usage", "--days", "7")
    assert code == 0
    for shown in ("bbbb2222", "total", "47"):
        assert shown in out
    assert run("usage", "--days", "0")[0] == 2
