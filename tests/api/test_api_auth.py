"""Auth middleware: header forms, one identical 401 for every failure, 403 for scope, public paths, key cache."""

from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from labelwise.api.auth import KeyVerifier
from labelwise.api.errors import UNAUTHORIZED_MESSAGE
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from labelwise.errors import StorageUnavailable
from labelwise.services.keys import KeyService
from tests.api.serving_fakes import Fixture, Running, started

pytestmark = pytest.mark.anyio

BODY = {"text": "my card is late"}


@pytest.mark.parametrize(
    "form", ["x-api-key", "Bearer", "Token", "bearer-lowercase"], ids=lambda f: f.replace(" ", "-")
)
async def test_each_header_form_is_accepted(running: Running, key: str, form: str) -> None:
    headers = {
        "x-api-key": {"x-api-key": key},
        "Bearer": {"Authorization": f"Bearer {key}"},
        "Token": {"Authorization": f"Token {key}"},
        "bearer-lowercase": {"Authorization": f"bearer {key}"},
    }[form]
    r = await running.client.post("/v1/classify", json=BODY, headers=headers)
    assert r.status_code == 200, r.text


async def test_every_auth_failure_gets_the_same_401(running: Running, fx: Fixture) -> None:
    revoked = fx.key()
    fx.keys.revoke(revoked)
    unknown = "lw_00000000_" + "x" * 32
    cases = {
        "missing": {},
        "empty": {"x-api-key": ""},
        "malformed": {"x-api-key": "not-a-key"},
        "wrong-scheme": {"Authorization": f"Basic {unknown}"},
        "scheme-only": {"Authorization": "Bearer"},
        "unknown": {"Authorization": f"Bearer {unknown}"},
        "revoked": {"x-api-key": revoked},
        "too-long": {"x-api-key": "lw_" + "a" * 5000},
    }
    bodies = set()
    for name, headers in cases.items():
        r = await running.client.post("/v1/classify", json=BODY, headers={**headers, "X-Request-Id": "same"})
        assert r.status_code == 401, name
        assert r.headers["www-authenticate"] == "Bearer", name
        error = ErrorResponse.model_validate(r.json()).error
        assert (error.code, error.message) == ("unauthorized", UNAUTHORIZED_MESSAGE)
        bodies.add(r.content)
    assert len(bodies) == 1


async def test_missing_scope_is_403(running: Running, fx: Fixture) -> None:
    trainer = fx.key("train")
    for method, path in [("POST", "/v1/classify"), ("POST", "/v1/batch"), ("GET", "/v1/models")]:
        r = await running.client.request(method, path, json=BODY, headers={"x-api-key": trainer})
        assert r.status_code == 403, path
        assert ErrorResponse.model_validate(r.json()).error.code == "forbidden"
    admin = fx.key("admin")
    r = await running.client.post("/v1/classify", json=BODY, headers={"x-api-key": admin})
    assert r.status_code == 200


async def test_public_paths_need_no_key(running: Running) -> None:
    for path in ("/health", "/ready", "/openapi.json", "/docs"):
        r = await running.client.get(path)
        assert r.status_code == 200, path
    r = await running.client.get("/v1/models")
    assert r.status_code == 401


async def test_unknown_paths_need_a_key_before_404(running: Running, key: str) -> None:
    assert (await running.client.get("/admin/secret")).status_code == 401
    assert (await running.client.get("/admin/secret", headers={"x-api-key": key})).status_code == 404


async def test_revoked_key_stops_working_within_the_cache_ttl(settings: Settings, fx: Fixture) -> None:
    fx.publish()
    key = fx.key()
    async with started(settings, key_cache_seconds=0.3) as app:
        headers = {"x-api-key": key}
        assert (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 200
        fx.keys.revoke(key)
        deadline = time.monotonic() + 5
        while (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 200:
            assert time.monotonic() < deadline, "revoked key still accepted"
            await anyio.sleep(0.05)


class CountingKeys(KeyService):
    def __init__(self, inner: KeyService, delay: float = 0.0) -> None:
        super().__init__(inner.repo)
        self.count = 0
        self.delay = delay

    def verify(self, key: str):  # type: ignore[no-untyped-def]
        self.count += 1
        time.sleep(self.delay)  # runs in a worker thread, as in the server
        return super().verify(key)


async def test_verified_keys_are_cached(fx: Fixture) -> None:
    key = fx.key()
    keys = CountingKeys(fx.keys)
    verifier = KeyVerifier(keys, ttl_seconds=60)
    for _ in range(5):
        assert await verifier.verify(key) is not None
        assert await verifier.verify("lw_00000000_nope") is None
    assert keys.count == 2
    small = KeyVerifier(keys, ttl_seconds=60, max_entries=3)
    for i in range(10):
        await small.verify(f"lw_0000000{i}_nope")
    assert len(small._cache) <= 3


async def test_requests_arriving_together_share_one_key_lookup(fx: Fixture) -> None:
    key = fx.key()
    keys = CountingKeys(fx.keys, delay=0.05)
    verifier = KeyVerifier(keys, ttl_seconds=0.2)
    principals = await asyncio.gather(*(verifier.verify(key) for _ in range(32)))
    assert keys.count == 1
    assert len({p.prefix for p in principals if p is not None}) == 1
    assert None not in principals
    await anyio.sleep(0.25)  # expired: the next wave looks the key up again, once
    await asyncio.gather(*(verifier.verify(key) for _ in range(32)))
    assert keys.count == 2


async def test_a_caller_that_goes_away_leaves_the_shared_lookup_running(fx: Fixture) -> None:
    key = fx.key()
    keys = CountingKeys(fx.keys, delay=0.05)
    verifier = KeyVerifier(keys, ttl_seconds=60)
    first = asyncio.ensure_future(verifier.verify(key))
    second = asyncio.ensure_future(verifier.verify(key))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second) is not None
    assert keys.count == 1
    assert verifier.cached(key) is not None


class UnreachableKeys(KeyService):
    """The key store of a database that goes away when `down` is set."""

    def __init__(self, real: KeyService) -> None:
        super().__init__(real.repo)
        self.down = False

    def verify(self, key: str):  # type: ignore[no-untyped-def]
        if self.down:
            raise StorageUnavailable("storage unavailable: the database cannot be reached; retry later")
        return super().verify(key)


async def test_keys_verified_before_keep_working_while_the_database_is_away(fx: Fixture) -> None:
    key = fx.key()
    keys = UnreachableKeys(fx.keys)
    verifier = KeyVerifier(keys, ttl_seconds=0)  # every call looks the key up again
    assert await verifier.verify(key) is not None
    assert await verifier.verify("lw_00000000_nope") is None
    keys.down = True
    held = await verifier.verify(key)
    assert held is not None
    assert held.prefix == key.split("_")[1]
    with pytest.raises(StorageUnavailable):  # held as invalid: no principal to fall back on
        await verifier.verify("lw_00000000_nope")
    with pytest.raises(StorageUnavailable):  # never seen
        await verifier.verify(fx.key())
