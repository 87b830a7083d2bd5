"""A tiny real engine and helpers shared by the API and server tests.

`KeywordEngine` is a genuine `Engine`: it learns which words belong to which label, scores texts by keyword
hits, saves JSON and loads it back, so the model store, checksums and hot reload run for real.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import anyio
import httpx
import numpy as np
import orjson
import uvicorn
from fastapi import FastAPI

from labelwise.api import create_app
from labelwise.config import Settings
from labelwise.domain import LabeledTexts, ModelVersion, TaskType
from labelwise.engines.base import Engine, FloatArray, ProgressCallback
from labelwise.engines.factory import register_engine
from labelwise.registry.store import ModelStore
from labelwise.services.keys import KeyService
from labelwise.storage.db import Database
from labelwise.storage.repositories import KeyRepository, ModelRepository

_WORD = re.compile(r"\w+")

TRAIN = LabeledTexts(
    texts=[
        "my card has not arrived",
        "where is my new card",
        "card delivery is late",
        "how do I top up my account",
        "top up with bank transfer",
        "add money by top up",
        "I forgot my password",
        "reset the password please",
    ],
    labels=[("card",)] * 3 + [("topup",)] * 3 + [("password",)] * 2,
)


class KeywordEngine(Engine):
    """Scores each label by how many of its training words a text contains; rows sum to 1."""

    name: ClassVar[str] = "serving_keyword"
    # Sizes of every `predict_proba` call across all instances, and an optional cost per call: tests read and set
    # these to see coalescing and to make calls slow enough to overlap.
    calls: ClassVar[list[int]] = []
    delay_seconds: ClassVar[float] = 0.0
    fail_on: ClassVar[str | None] = None  # a text containing this makes the engine raise, like a bug would

    def __init__(self, boost: float = 4.0) -> None:
        self.boost = boost

    def fit(
        self,
        train: LabeledTexts,
        validation: LabeledTexts,
        *,
        multi_label: bool = False,
        progress: ProgressCallback | None = None,
    ) -> Self:
        words: dict[str, set[str]] = {}
        for text, labels in zip(train.texts, train.labels, strict=True):
            for label in labels:
                words.setdefault(label, set()).update(_WORD.findall(text.lower()))
        shared = set.intersection(*words.values()) if len(words) > 1 else set()
        self.classes_ = sorted(words)
        self.keywords_ = {label: sorted(words[label] - shared) for label in self.classes_}
        self.task_ = TaskType.MULTI_LABEL if multi_label else TaskType.SINGLE_LABEL
        self.thresholds_ = np.full(len(self.classes_), 0.5) if multi_label else None
        return self

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        self.check_fitted()
        KeywordEngine.calls.append(len(texts))
        if KeywordEngine.fail_on is not None and any(KeywordEngine.fail_on in t for t in texts):
            raise RuntimeError("engine bug: secret internal detail")
        if KeywordEngine.delay_seconds:
            time.sleep(KeywordEngine.delay_seconds)  # simulated compute, so concurrent requests overlap it
        scores = np.ones((len(texts), len(self.classes_)))
        for i, text in enumerate(texts):
            found = set(_WORD.findall(text.lower()))
            for j, label in enumerate(self.classes_):
                scores[i, j] += self.boost * len(found.intersection(self.keywords_[label]))
        result: FloatArray = scores / scores.sum(axis=1, keepdims=True)
        return result

    def save(self, directory: Path) -> None:
        self.check_fitted()
        state = {"boost": self.boost, "classes": self.classes_, "keywords": self.keywords_, "task": self.task_.value}
        (directory / "keyword.json").write_bytes(orjson.dumps(state))

    @classmethod
    def load(cls, directory: Path) -> Self:
        state = orjson.loads((directory / "keyword.json").read_bytes())
        engine = cls(boost=state["boost"])
        engine.classes_ = list(state["classes"])
        engine.keywords_ = {k: list(v) for k, v in state["keywords"].items()}
        engine.task_ = TaskType(state["task"])
        engine.thresholds_ = None
        return engine

    def get_params(self) -> dict[str, Any]:
        return {"boost": self.boost}


def reset_keyword_engine() -> None:
    """Make the engine known to the model store and clear what earlier tests left in its class attributes."""
    register_engine(KeywordEngine.name, f"{KeywordEngine.__module__}:KeywordEngine")
    KeywordEngine.calls.clear()
    KeywordEngine.delay_seconds = 0.0
    KeywordEngine.fail_on = None


def trained(boost: float = 4.0, train: LabeledTexts = TRAIN) -> KeywordEngine:
    return KeywordEngine(boost=boost).fit(train, train)


def make_settings(data_dir: Path, url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": url,
        "model_poll_seconds": 0.1,
        "default_model": None,
        "log_json": True,
    }
    values.update(overrides)
    return Settings(**values)


class Fixture:
    """Direct access to the database behind an app under test: publish models, make and revoke keys."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.resolved_database_url())
        self.db.migrate()
        self.models = ModelRepository(self.db)
        self.store = ModelStore(settings.models_dir, self.models)
        self.keys = KeyService(KeyRepository(self.db))

    def publish(self, name: str = "intents", engine: Engine | None = None) -> ModelVersion:
        return self.store.publish(name, engine or trained(), metrics={"accuracy": 1.0}, data={"rows": 8})

    def key(self, *scopes: str) -> str:
        secret, _info = self.keys.create("test", list(scopes) or ["classify"])
        return secret

    def close(self) -> None:
        self.db.dispose()


def corrupt(store: ModelStore, record: ModelVersion) -> None:
    """Change one artifact byte so the version fails its checksum."""
    path = store.directory(record) / "engine" / "keyword.json"
    path.write_bytes(path.read_bytes().replace(b"boost", b"boosT"))


def wait_until(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `predicate` until it is true; AssertionError after `timeout` seconds (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


async def wait_ready(app: FastAPI, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not app.container.manager.ready:
        if time.monotonic() > deadline:
            raise AssertionError("app not ready in time")
        await anyio.sleep(0.01)


class Running:
    """An app with its lifespan started, and a client for it."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def manager(self) -> Any:
        return self.app.container.manager


@asynccontextmanager
async def started(settings: Settings, **kwargs: Any) -> AsyncIterator[Running]:
    """Create the app, run its lifespan, wait until ready, and hand out a client (httpx.ASGITransport)."""
    app = create_app(settings, **kwargs)
    async with app.router.lifespan_context(app):
        await wait_ready(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://labelwise.test") as client:
            yield Running(app, client)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn (httptools) in a thread on a free loopback port until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http="httptools", log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started, timeout=15)
        wait_until(lambda: http_status(base + "/ready") == 200, timeout=15)
        yield base
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def wait_all_ready(base: str, timeout: float = 60.0) -> None:
    """Wait until every worker of a multi-worker server is ready. Each worker answers /ready for itself, so
    wait for a run of fresh connections (spread over the workers by the kernel) that all find a ready one."""
    wait_until(lambda: all(http_status(f"{base}/ready") == 200 for _ in range(12)), timeout=timeout)


def http_status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0
