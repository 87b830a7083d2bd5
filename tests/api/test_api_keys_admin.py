"""The key administration API (`/v1/keys`) and the usage report (`/v1/usage`): scopes, validation naming the field,
the audit log, and who may read whose usage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from labelwise.api.schemas.errors import ErrorResponse
from labelwise.api.schemas.keys import KeyCreate, KeyCreated, KeyList, KeyPublic
from labelwise.api.schemas.usage import UsageResponse
from labelwise.config import Settings
from labelwise.services.idempotency import body_hash
from labelwise.services.keys import KeyChanges, split_key
from labelwise.storage.tables import IdempotencyRow
from tests.api.serving_fakes import Fixture, Running, started

pytestmark = pytest.mark.anyio

BODY = {"text": "my card is late"}


@pytest.fixture
def admin(fx: Fixture) -> dict[str, str]:
    return {"x-api-key": fx.key("admin")}


async def test_create_list_show_update_revoke(running: Running, fx: Fixture, admin: dict[str, str]) -> None:
    body = {"name": "svc", "scopes": ["classify"], "rate_limit": "20 per second; 1000 per minute", "credits": 50}
    r = await running.client.post("/v1/keys", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = KeyCreated.model_validate(r.json())
    assert created.key is not None
    assert created.key.startswith(f"lw_{created.prefix}_")
    assert not created.replayed
    assert (created.rate_limit, created.credits, created.status) == ("20/second; 1000/minute", 50, "active")
    assert (await running.client.post("/v1/classify", json=BODY, headers={"x-api-key": created.key})).status_code == 200

    listing = KeyList.model_validate((await running.client.get("/v1/keys", headers=admin)).json())
    assert created.prefix in {k.prefix for k in listing.data}
    assert created.key not in (await running.client.get("/v1/keys", headers=admin)).text

    change = {"add_credits": 25, "expires_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(), "name": "svc2"}
    r = await running.client.patch(f"/v1/keys/{created.prefix}", json=change, headers=admin)
    updated = KeyPublic.model_validate(r.json())
    assert (updated.credits, updated.name, updated.rate_limit) == (50 - 1 + 25, "svc2", "20/second; 1000/minute")
    r = await running.client.patch(
        f"/v1/keys/{created.prefix}", json={"credits": None, "rate_limit": None}, headers=admin
    )
    assert (r.json()["credits"], r.json()["rate_limit"]) == (None, None)

    r = await running.client.delete(f"/v1/keys/{created.prefix}", headers=admin)
    assert KeyPublic.model_validate(r.json()).status == "revoked"
    assert (await running.client.delete(f"/v1/keys/{created.prefix}", headers=admin)).status_code == 404
    shown = KeyPublic.model_validate((await running.client.get(f"/v1/keys/{created.prefix}", headers=admin)).json())
    assert shown.status == "revoked"


def created_keys(fx: Fixture, name: str) -> list[str]:
    """Prefixes of the keys called `name`, and each was audited as created once."""
    prefixes = [info.prefix for info in fx.keys.list() if info.name == name]
    creations = [row.target for row in fx.keys.repo.audit_log() if row.action == "key.create"]
    assert all(creations.count(prefix) == 1 for prefix in prefixes)
    return prefixes


async def test_idempotency_key_creates_once_and_the_replay_withholds_the_secret(
    running: Running, fx: Fixture, admin: dict[str, str]
) -> None:
    headers = {**admin, "Idempotency-Key": "make-svc-1"}
    body = {"name": "svc", "scopes": ["train", "classify"], "credits": 10}
    first = await running.client.post("/v1/keys", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    created = KeyCreated.model_validate(first.json())
    assert created.key is not None
    assert not created.replayed

    # The same request, its fields in another order: the first answer again, without the secret.
    again = await running.client.post("/v1/keys", json=dict(reversed(body.items())), headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    replayed = KeyCreated.model_validate(again.json())
    assert (replayed.key, replayed.replayed) == (None, True)
    assert replayed.model_dump(exclude={"key", "replayed"}) == created.model_dump(exclude={"key", "replayed"})
    assert created.key not in again.text
    assert created_keys(fx, "svc") == [created.prefix]
    with fx.db.session() as session:  # the secret is stored nowhere, the idempotency table included
        stored = session.scalars(select(IdempotencyRow.response)).all()
    assert stored
    assert created.key not in repr(stored)
    assert created.key.split("_", 2)[2] not in repr(stored)
    usable = await running.client.post("/v1/classify", json=BODY, headers={"x-api-key": created.key})
    assert usable.status_code == 200

    other = await running.client.post("/v1/keys", json={**body, "credits": 11}, headers=headers)
    assert other.status_code == 422
    assert ErrorResponse.model_validate(other.json()).error.code == "idempotency_key_reused"
    # Scoped to the calling key: another admin key's request with the same Idempotency-Key is its own.
    own = await running.client.post("/v1/keys", json=body, headers={**headers, "x-api-key": fx.key("admin")})
    assert own.status_code == 201
    assert KeyCreated.model_validate(own.json()).key is not None
    assert sorted(created_keys(fx, "svc")) == sorted([created.prefix, own.json()["prefix"]])


async def test_key_creation_in_progress_is_409_and_a_refused_one_can_be_retried(
    running: Running, fx: Fixture, admin: dict[str, str]
) -> None:
    caller = split_key(admin["x-api-key"])
    assert caller is not None
    body = {"name": "busy"}
    # As if the first request with this key and body were still running.
    running.app.container.idempotency.repo.reserve(
        caller, "busy-1", body_hash(KeyCreate.model_validate(body).fingerprint())
    )
    r = await running.client.post("/v1/keys", json=body, headers={**admin, "Idempotency-Key": "busy-1"})
    assert r.status_code == 409
    assert ErrorResponse.model_validate(r.json()).error.code == "conflict"
    assert created_keys(fx, "busy") == []

    headers = {**admin, "Idempotency-Key": "bad-1"}
    for _ in range(2):  # a refused request keeps nothing under its key: the repeat is checked again, not 409
        r = await running.client.post("/v1/keys", json={"name": "bad", "scopes": ["root"]}, headers=headers)
        assert r.status_code == 400
    assert (await running.client.post("/v1/keys", json={"name": "bad"}, headers=headers)).status_code == 201
    assert len(created_keys(fx, "bad")) == 1


async def test_keys_api_needs_the_admin_scope(running: Running, key: str) -> None:
    for method, path in [("GET", "/v1/keys"), ("POST", "/v1/keys"), ("PATCH", "/v1/keys/abcd1234")]:
        r = await running.client.request(method, path, json={}, headers={"x-api-key": key})
        assert r.status_code == 403, path
    assert (await running.client.get("/v1/keys")).status_code == 401


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"rate_limit": "fast"}, "rate_limit", "is not a rate limit"),
        ({"rate_limit": "0/second"}, "rate_limit", "at least 1"),
        ({"credits": -1}, "credits", "greater than or equal to 0"),
        ({"credits": 5, "add_credits": 5}, "credits", "either credits or add_credits"),
        ({"scopes": ["root"]}, "scopes", "root"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at", "in the past"),
        ({"colour": "blue"}, "colour", "extra"),
    ],
)
async def test_bad_settings_name_the_field(
    running: Running, fx: Fixture, admin: dict[str, str], body: dict[str, object], param: str, words: str
) -> None:
    prefix = fx.keys.create("x")[1].prefix
    r = await running.client.patch(f"/v1/keys/{prefix}", json=body, headers=admin)
    assert r.status_code == 400, r.text
    error = ErrorResponse.model_validate(r.json()).error
    assert error.param == param
    assert error.message.startswith(f"{param}:")
    assert words in error.message.lower()


async def test_add_credits_to_an_unlimited_key_is_refused(running: Running, fx: Fixture, admin: dict[str, str]) -> None:
    prefix = fx.keys.create("x")[1].prefix
    r = await running.client.patch(f"/v1/keys/{prefix}", json={"add_credits": 5}, headers=admin)
    assert r.status_code == 400
    assert "unlimited" in r.json()["error"]["message"]
    r = await running.client.patch("/v1/keys/00000000", json={"name": "x"}, headers=admin)
    assert r.status_code == 404


async def test_every_change_is_audited_with_actor_and_request_id(
    running: Running, fx: Fixture, admin: dict[str, str]
) -> None:
    actor = admin["x-api-key"].split("_")[1]
    r = await running.client.post("/v1/keys", json={"name": "a"}, headers={**admin, "X-Request-Id": "req-create"})
    prefix = r.json()["prefix"]
    await running.client.patch(
        f"/v1/keys/{prefix}", json={"enabled": False}, headers={**admin, "X-Request-Id": "req-disable"}
    )
    await running.client.delete(f"/v1/keys/{prefix}", headers={**admin, "X-Request-Id": "req-revoke"})
    rows = [row for row in fx.keys.repo.audit_log() if row.target == prefix]
    assert [(row.action, row.actor, row.request_id) for row in rows] == [
        ("key.revoke", actor, "req-revoke"),
        ("key.update", actor, "req-disable"),
        ("key.create", actor, "req-create"),
    ]
    assert rows[1].details == {"disabled": True}


async def test_disabling_a_key_takes_effect_within_the_cache_ttl(settings: Settings, fx: Fixture) -> None:
    fx.publish()
    admin, victim = {"x-api-key": fx.key("admin")}, fx.keys.create("v", ["classify"])
    async with started(settings, key_cache_seconds=0.0) as app:
        headers = {"x-api-key": victim[0]}
        assert (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 200
        await app.client.patch(f"/v1/keys/{victim[1].prefix}", json={"enabled": False}, headers=admin)
        assert (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 401
        await app.client.patch(f"/v1/keys/{victim[1].prefix}", json={"enabled": True}, headers=admin)
        assert (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 200


async def test_usage_shows_own_key_and_all_keys_to_admin(running: Running, fx: Fixture, admin: dict[str, str]) -> None:
    one, two = fx.key(), fx.key()
    for key, texts in ((one, ["card"]), (two, ["card", "top up"])):
        assert (
            await running.client.post("/v1/batch", json={"texts": texts}, headers={"x-api-key": key})
        ).status_code == 200
    mine = UsageResponse.model_validate((await running.client.get("/v1/usage", headers={"x-api-key": one})).json())
    assert [(row.key, row.texts, row.route) for row in mine.data] == [(one.split("_")[1], 1, "/v1/batch")]
    assert mine.end == datetime.now(UTC).date()
    r = await running.client.get("/v1/usage", params={"key": two.split("_")[1]}, headers={"x-api-key": one})
    assert r.status_code == 403
    assert r.json()["error"]["param"] == "key"
    everyone = UsageResponse.model_validate((await running.client.get("/v1/usage", headers=admin)).json())
    assert everyone.total.texts == 3
    assert {row.key for row in everyone.data} == {one.split("_")[1], two.split("_")[1]}
    r = await running.client.get("/v1/usage", params={"from": "2030-01-02", "to": "2030-01-01"}, headers=admin)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "from"
    r = await running.client.get("/v1/usage", params={"from": "2020-01-01", "to": "2030-01-01"}, headers=admin)
    assert r.status_code == 400
    assert "the limit is 366" in r.json()["error"]["message"]


async def test_keys_created_without_settings_take_the_defaults(fx: Fixture) -> None:
    from labelwise.services.keys import KeyService

    keys = KeyService(fx.keys.repo, default_credits=100)
    _, plain = keys.create("plain")
    _, unlimited = keys.create("rich", settings=KeyChanges(credits=None))
    assert (plain.credits, plain.rate_limit) == (100, None)
    assert unlimited.credits is None
