"""The model store on SQLite and PostgreSQL: versions, aliases, checksums, concurrent readers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from tests.support.keyword_engine import fitted

from labelwise.errors import InvalidRequest, ModelLoadError, ModelNotFound
from labelwise.registry.store import ModelStore, next_version, parse_ref
from labelwise.storage.db import Database
from labelwise.storage.repositories import ModelRepository


@pytest.fixture
def store(database: Database, tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "models", ModelRepository(database))


def publish(store: ModelStore, name: str = "topics", **kw: object) -> object:
    engine = fitted(**kw)  # type: ignore[arg-type]
    return store.publish(name, engine, metrics={"headline": {"accuracy": 1.0}}, data={"rows": 6})


def test_versions_follow_semver_by_label_set(store: ModelStore) -> None:
    first = store.publish("topics", fitted(), metrics={}, data={})
    second = store.publish("topics", fitted(), metrics={}, data={})
    changed = store.publish("topics", fitted({"a": ["x y"], "b": ["z w"]}), metrics={}, data={})
    assert [first.version, second.version, changed.version] == ["1.0.0", "1.1.0", "2.0.0"]
    assert [v.version for v in store.versions("topics")] == ["2.0.0", "1.1.0", "1.0.0"]


def test_production_follows_newest_until_set(store: ModelStore) -> None:
    store.publish("topics", fitted(), metrics={}, data={})
    store.publish("topics", fitted(), metrics={}, data={})
    assert store.resolve("topics").version == "1.1.0"
    store.set_alias("topics", "production", "1.0.0")
    store.publish("topics", fitted(), metrics={}, data={})
    assert store.resolve("topics").version == "1.0.0"
    assert store.resolve("topics@latest").version == "1.2.0"
    assert store.resolve("topics:1.1.0").version == "1.1.0"
    store.remove_alias("topics", "production")
    assert store.resolve("topics").version == "1.2.0"


def test_load_round_trip_and_metadata(store: ModelStore) -> None:
    record = store.publish("topics", fitted(), metrics={"headline": {"accuracy": 0.9}}, data={"rows": 6})
    assert record.labels == ["money", "sports", "weather"]
    assert record.metrics["headline"]["accuracy"] == 0.9
    assert len(record.sha256) == 64
    engine = store.load(store.resolve("topics"))
    proba = engine.predict_proba(["the team scored a goal"])
    assert engine.classes_[int(np.argmax(proba))] == "sports"


def test_tampered_artifact_is_refused(store: ModelStore) -> None:
    record = store.publish("topics", fitted(), metrics={}, data={})
    artifact = store.directory(record) / "engine" / "keyword.json"
    artifact.write_text(artifact.read_text().replace("goal", "gaol"))
    with pytest.raises(ModelLoadError, match="failed its checksum"):
        store.load(record)


def test_missing_manifest_is_refused(store: ModelStore) -> None:
    record = store.publish("topics", fitted(), metrics={}, data={})
    (store.directory(record) / "manifest.json").unlink()
    with pytest.raises(ModelLoadError, match="manifest missing"):
        store.load(record)


def test_delete_version_and_model(store: ModelStore) -> None:
    store.publish("topics", fitted(), metrics={}, data={})
    second = store.publish("topics", fitted(), metrics={}, data={})
    store.delete("topics", "1.1.0")
    assert not store.directory(second).exists()
    assert [v.version for v in store.versions("topics")] == ["1.0.0"]
    store.delete("topics")
    with pytest.raises(ModelNotFound):
        store.resolve("topics")
    assert store.all() == {}


@pytest.mark.parametrize(
    ("ref", "message"),
    [("Bad Name", "not a valid model name"), ("topics@", "not a valid alias"), ("topics:1.0", "MAJOR.MINOR.PATCH")],
)
def test_bad_references_name_the_field(ref: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        parse_ref(ref)
    assert info.value.param == "model"


def test_unknown_model_alias_and_version(store: ModelStore) -> None:
    store.publish("topics", fitted(), metrics={}, data={})
    for ref in ("other", "topics@canary", "topics:9.9.9"):
        with pytest.raises(ModelNotFound):
            store.resolve(ref)


def test_latest_alias_cannot_be_set(store: ModelStore) -> None:
    store.publish("topics", fitted(), metrics={}, data={})
    with pytest.raises(InvalidRequest, match="computed"):
        store.set_alias("topics", "latest", "1.0.0")


def test_reader_never_sees_half_written_version(store: ModelStore) -> None:
    """While versions are published, every version a reader resolves loads completely."""
    store.publish("topics", fitted(), metrics={}, data={})
    stop = threading.Event()
    failures: list[BaseException] = []
    loads = 0

    def reader() -> None:
        nonlocal loads
        while not stop.is_set():
            try:
                store.load(store.resolve("topics"))
                loads += 1
            except BaseException as exc:  # pragma: no cover - reported below
                failures.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(8):
        store.publish("topics", fitted(), metrics={}, data={})
    stop.set()
    thread.join()
    assert failures == []
    assert loads > 0
    assert store.resolve("topics").version == "1.8.0"


def test_concurrent_publishers_get_distinct_versions(store: ModelStore) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            results.append(store.publish("topics", fitted(), metrics={}, data={}).version)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=publisher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]


def test_next_version_rules() -> None:
    assert next_version(None, ["a"]) == "1.0.0"
