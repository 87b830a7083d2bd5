"""API keys: format, verification, scopes and revocation against a real database."""

from __future__ import annotations

import pytest

from labelwise.errors import InvalidRequest, NotFound
from labelwise.services.keys import KeyService, split_key
from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository


@pytest.fixture
def keys(database: Database) -> KeyService:
    return KeyService(KeyRepository(database))


def test_every_new_key_verifies(keys: KeyService) -> None:
    # Secrets are URL-safe base64 and often contain "_": each of many keys must still verify.
    for _ in range(40):
        key, info = keys.create("svc", ["classify"])
        principal = keys.verify(key)
        assert principal is not None
        assert principal.prefix == info.prefix


def test_secret_is_not_stored(keys: KeyService, database: Database) -> None:
    key, info = keys.create("svc")
    row = KeyRepository(database).by_prefix(info.prefix)
    assert row is not None
    secret = key.split("_", 2)[2]
    assert secret not in row.secret_hash
    assert key != row.secret_hash


@pytest.mark.parametrize("bad", ["", "lw_", "lw_short_x", "nope", "lw_00000000_wrong", "Bearer x"])
def test_malformed_or_unknown_keys_are_refused(keys: KeyService, bad: str) -> None:
    keys.create("svc")
    assert keys.verify(bad) is None


def test_tampered_secret_is_refused(keys: KeyService) -> None:
    key, _ = keys.create("svc")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert keys.verify(tampered) is None


def test_revoked_key_is_refused(keys: KeyService) -> None:
    key, info = keys.create("svc")
    keys.revoke(info.prefix)
    assert keys.verify(key) is None
    with pytest.raises(NotFound):
        keys.revoke(info.prefix)


def test_scopes() -> None:
    assert split_key("lw_abcdef12_se_cr_et") == "abcdef12"


def test_admin_allows_everything_and_unknown_scope_is_refused(keys: KeyService) -> None:
    key, _ = keys.create("root", ["admin"])
    principal = keys.verify(key)
    assert principal is not None
    assert principal.allows("train")
    with pytest.raises(InvalidRequest, match="scopes: root"):
        keys.create("x", ["root"])


def test_ensure_admin_key_only_when_none(keys: KeyService) -> None:
    first = keys.ensure_admin_key()
    assert first is not None
    assert keys.ensure_admin_key() is None


def test_audit_log_records_changes(keys: KeyService) -> None:
    _, info = keys.create("svc")
    keys.revoke(info.prefix)
    actions = [row.action for row in keys.repo.audit_log()]
    assert actions == ["key.revoke", "key.create"]
