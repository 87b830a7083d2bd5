"""Rate limits in process memory: 429 with Retry-After and the RateLimit fields, the default policy, exactness under
concurrency, the failed-login cap per address, and expired or disabled keys failing like unknown ones."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from labelwise.api.schemas.classify import ClassifyResponse
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio

BODY = {"text": "my card is late"}
POLICY = re.compile(r'^"(?P<name>[^"]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
STATE = re.compile(r'^"(?P<name>[^"]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def limited_key(fx: Fixture, rate_limit: str | None, *scopes: str) -> str:
    secret, _ = fx.keys.create("limited", list(scopes) or ["classify"], settings=KeyChanges(rate_limit=rate_limit))
    return secret


async def test_over_the_limit_is_429_with_retry_after_and_ratelimit_fields(running: Running, fx: Fixture) -> None:
    headers = {"x-api-key": limited_key(fx, "3/minute")}
    remaining = []
    for _ in range(3):
        r = await running.client.post("/v1/classify", json=BODY, headers=headers)
        assert r.status_code == 200, r.text
        ClassifyResponse.model_validate(r.json())
        policy = POLICY.fullmatch(r.headers["ratelimit-policy"])
        state = STATE.fullmatch(r.headers["ratelimit"])
        assert policy is not None, r.headers
        assert state is not None, r.headers
        assert (policy["q"], policy["w"]) == ("3", "60")
        assert state["name"] == policy["name"]
        assert 0 < int(state["t"]) <= 60
        remaining.append(int(state["r"]))
    assert remaining == [2, 1, 0]
    r = await running.client.post("/v1/classify", json=BODY, headers=headers)
    assert r.status_code == 429
    error = ErrorResponse.model_validate(r.json()).error
    assert error.code == "TOO_MANY_REQUESTS"
    assert "3 requests per 60 s" in error.message
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert STATE.fullmatch(r.headers["ratelimit"])["r"] == "0"  # type: ignore[index]


async def test_default_policy_applies_to_keys_without_their_own(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url, default_rate_limit="2/minute")
    fx = Fixture(settings)
    fx.publish()
    default_key, unlimited, own = fx.key(), limited_key(fx, "unlimited"), limited_key(fx, "5/minute")
    try:
        async with started(settings) as app:

            async def statuses(key: str, n: int) -> list[int]:
                responses = [
                    await app.client.post("/v1/classify", json=BODY, headers={"x-api-key": key}) for _ in range(n)
                ]
                return [r.status_code for r in responses]

            assert await statuses(default_key, 3) == [200, 200, 429]
            assert await statuses(own, 6) == [200] * 5 + [429]
            assert await statuses(unlimited, 6) == [200] * 6
            r = await app.client.post("/v1/classify", json=BODY, headers={"x-api-key": unlimited})
            assert "ratelimit" not in r.headers
    finally:
        fx.close()


async def test_limit_is_exact_under_concurrency(running: Running, fx: Fixture) -> None:
    headers = {"x-api-key": limited_key(fx, "7/minute")}
    responses = await asyncio.gather(
        *[running.client.post("/v1/classify", json=BODY, headers=headers) for _ in range(40)]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 7 + [429] * 33


async def test_public_paths_and_other_keys_are_not_limited(running: Running, fx: Fixture) -> None:
    tight = {"x-api-key": limited_key(fx, "1/minute")}
    assert (await running.client.post("/v1/classify", json=BODY, headers=tight)).status_code == 200
    assert (await running.client.post("/v1/classify", json=BODY, headers=tight)).status_code == 429
    assert (await running.client.get("/health")).status_code == 200
    other = {"x-api-key": limited_key(fx, "1/minute")}
    assert (await running.client.post("/v1/classify", json=BODY, headers=other)).status_code == 200


async def test_repeated_failed_logins_get_429_before_the_key_check(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url, auth_failure_limit="5/minute")
    fx = Fixture(settings)
    fx.publish()
    cached, fresh = fx.key(), fx.key()
    try:
        async with started(settings) as app:
            assert (await app.client.post("/v1/classify", json=BODY, headers={"x-api-key": cached})).status_code == 200
            bad = {"x-api-key": "lw_00000000_" + "x" * 32}
            codes = [(await app.client.post("/v1/classify", json=BODY, headers=bad)).status_code for _ in range(6)]
            assert codes == [401] * 5 + [429]
            r = await app.client.post("/v1/classify", json=BODY, headers={"x-api-key": fresh})
            # Refused before the key is looked up: even a valid key is not checked from this address now.
            assert r.status_code == 429
            assert ErrorResponse.model_validate(r.json()).error.code == "TOO_MANY_REQUESTS"
            assert 1 <= int(r.headers["retry-after"]) <= 60
            # A key this server already verified is not a guess: it keeps working.
            r = await app.client.post("/v1/classify", json=BODY, headers={"x-api-key": cached})
            assert r.status_code == 200
    finally:
        fx.close()


async def test_expired_and_disabled_keys_fail_exactly_like_unknown_keys(running: Running, fx: Fixture) -> None:
    expired, disabled = fx.key(), fx.key()
    fx.keys.repo.update(expired.split("_")[1], {"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    fx.keys.update(disabled, KeyChanges(enabled=False))
    bodies = set()
    for key in (expired, disabled, "lw_00000000_" + "x" * 32):
        r = await running.client.post("/v1/classify", json=BODY, headers={"x-api-key": key, "X-Request-Id": "same"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        bodies.add(r.content)
    assert len(bodies) == 1


async def test_a_key_expiring_while_cached_stops_at_its_expiry(settings: Settings, fx: Fixture) -> None:
    fx.publish()
    soon = datetime.now(UTC) + timedelta(seconds=1.0)
    secret, _ = fx.keys.create("brief", ["classify"], settings=KeyChanges(expires_at=soon))
    async with started(settings, key_cache_seconds=300) as app:
        headers = {"x-api-key": secret}
        assert (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 200
        deadline = time.monotonic() + 10
        while (await app.client.post("/v1/classify", json=BODY, headers=headers)).status_code == 200:
            assert time.monotonic() < deadline, "expired key still accepted"
            await anyio.sleep(0.05)
        assert datetime.now(UTC) >= soon
