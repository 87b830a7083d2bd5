"""Model changes without restart: new versions, moved aliases, refused versions, requests in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import anyio
import pytest

from labelwise.config import Settings
from tests.api.serving_fakes import Fixture, KeywordEngine, Running, corrupt, started, trained

pytestmark = pytest.mark.anyio


async def served_version(running: Running, auth: dict[str, str], model: str = "intents") -> str:
    r = await running.client.post("/v1/classify", json={"text": "card", "model": model}, headers=auth)
    assert r.status_code == 200, r.text
    version: str = r.json()["model_version"]
    return version


async def until_served(running: Running, auth: dict[str, str], version: str, model: str = "intents") -> None:
    deadline = time.monotonic() + 5
    while await served_version(running, auth, model) != version:
        assert time.monotonic() < deadline, f"{version} not served within 5 s"
        await anyio.sleep(0.02)


async def test_new_version_is_served_after_the_poll(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    assert await served_version(running, auth) == "1.0.0"
    fx.publish("intents", trained(boost=8.0))
    await until_served(running, auth, "1.1.0")  # the background poll runs every 0.1 s here
    assert "intents:1.1.0" in running.manager.loaded_refs()


async def test_moved_alias_is_followed(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    fx.publish("intents", trained(boost=8.0))
    await until_served(running, auth, "1.1.0")
    fx.store.set_alias("intents", "production", "1.0.0")
    await until_served(running, auth, "1.0.0")


async def test_corrupt_version_is_refused_and_the_old_keeps_serving(
    running: Running, fx: Fixture, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="labelwise.inference.manager"):
        broken = fx.publish("intents", trained(boost=8.0))
        corrupt(fx.store, broken)
        await running.manager.refresh()
    assert any("refused" in rec.getMessage() and "failed its checksum" in rec.getMessage() for rec in caplog.records)
    assert running.manager.serving("intents") == "intents:1.0.0"
    assert await served_version(running, auth) == "1.0.0"
    fx.publish("intents", trained(boost=3.0))  # a good 1.2.0 after the bad one is picked up
    await until_served(running, auth, "1.2.0")


async def test_version_with_a_missing_artifact_is_refused(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    broken = fx.publish("intents", trained(boost=8.0))
    (fx.store.directory(broken) / "engine" / "keyword.json").unlink()  # an artifact lost after publishing
    await running.manager.refresh()
    assert await served_version(running, auth) == "1.0.0"


async def test_requests_in_flight_finish_on_their_version(settings: Settings, fx: Fixture) -> None:
    fx.publish("intents")
    auth = {"x-api-key": fx.key()}
    async with started(settings, inference_threads=1) as app:
        KeywordEngine.delay_seconds = 0.5  # the engine runs in a thread, so the loop can reload meanwhile
        slow = asyncio.ensure_future(app.client.post("/v1/classify", json={"text": "slow card"}, headers=auth))
        while not KeywordEngine.calls:
            await anyio.sleep(0.005)
        fx.publish("intents", trained(boost=8.0))
        await app.manager.refresh()
        KeywordEngine.delay_seconds = 0.0
        assert (await app.manager.get("intents")).record.version == "1.1.0"
        assert (await slow).json()["model_version"] == "1.0.0"
        await until_served(app, auth, "1.1.0")


async def test_lazy_load_of_pinned_version(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    fx.publish("intents", trained(boost=8.0))
    await until_served(running, auth, "1.1.0")
    assert "intents:1.0.0" in running.manager.loaded_refs()  # still routed until the next change unloads it
    assert await served_version(running, auth, "intents:1.0.0") == "1.0.0"


async def test_deleted_model_stops_being_served(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    fx.store.delete("intents")
    await running.manager.refresh()
    r = await running.client.post("/v1/classify", json={"text": "card", "model": "intents"}, headers=auth)
    assert r.status_code == 404
    assert running.manager.loaded_refs() == []


async def test_request_before_first_snapshot_is_503_not_404(tmp_path: Path, database_url: str) -> None:
    """A model named before the server has read the store gets 'retry shortly', never 'no such model'."""
    from labelwise.errors import Overloaded
    from labelwise.inference.cache import PredictionCache
    from labelwise.inference.manager import BatchingConfig, ModelManager
    from labelwise.registry.store import ModelStore
    from labelwise.storage.db import Database
    from labelwise.storage.repositories import ModelRepository

    db = Database(database_url)
    db.migrate()
    try:
        repo = ModelRepository(db)
        store = ModelStore(tmp_path / "models", repo)
        store.publish("intents", trained(), metrics={}, data={})
        manager = ModelManager(store, repo, poll_seconds=60, cache=PredictionCache(10), batching=BatchingConfig())
        with pytest.raises(Overloaded, match="starting"):
            await manager.get("intents")
        await manager.refresh()
        assert (await manager.get("intents")).record.name == "intents"
    finally:
        db.dispose()
