"""Encoder admission: zero-shot and embedding work the encoder's queue has no room for is refused 503 with
Retry-After before any route code runs (no label vectors built, no validation), other work goes on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labelwise.api.schemas.classify import BatchResponse
from labelwise.api.schemas.errors import ErrorResponse
from labelwise.config import Settings
from labelwise.services.embeddings import LazyEncoder
from tests.api.serving_fakes import Fixture, Running, make_settings, started

pytestmark = pytest.mark.anyio


class Gate:
    """Holds the encoder's batches until opened, so a test decides what is in flight and what waits."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    gate = Gate()
    encode = LazyEncoder.encode

    def gated(self: LazyEncoder, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        gate.entered.set()
        assert gate.opened.wait(30), "the gate was never opened"
        return encode(self, texts, **kwargs)

    monkeypatch.setattr(LazyEncoder, "encode", gated)
    yield gate
    gate.opened.set()  # a test that failed with the gate shut must not leave the app's shutdown waiting on it


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url, encoder_queue_texts=4)


@pytest.fixture
async def app(settings: Settings, fx: Fixture) -> AsyncIterator[Running]:
    fx.publish("intents")
    async with started(settings) as item:
        yield item


async def test_work_that_does_not_fit_is_refused_before_the_route_runs(
    app: Running, fx: Fixture, gate: Gate, auth: dict[str, str]
) -> None:
    client, zeroshot = app.client, app.app.container.zeroshot
    labels = ["sports", "finance"]
    # The label vectors are built first, through the encoder too: with the gate open, so that what follows queues
    # texts only (a request for labels whose vectors are being built waits for that build, not in the queue).
    gate.opened.set()
    assert (await client.post("/v1/classify", json={"text": "goal", "labels": labels}, headers=auth)).is_success
    gate.opened.clear()
    gate.entered.clear()
    in_flight = asyncio.create_task(client.post("/v1/classify", json={"text": "goal", "labels": labels}, headers=auth))
    assert await asyncio.to_thread(gate.entered.wait, 30)  # taken by the encoder: it no longer counts as queued
    queued_body = {"texts": ["a", "b", "c"], "labels": labels}
    queued = asyncio.create_task(client.post("/v1/batch", json=queued_body, headers=auth))
    for _ in range(3000):
        if zeroshot.batcher.queued_texts == 3:
            break
        await asyncio.sleep(0.01)
    assert zeroshot.batcher.queued_texts == 3, "the three texts never reached the encoder's queue"
    built = len(zeroshot._engines)

    # Two more texts do not fit (3 + 2 > 4): refused at once, and new labels are not even embedded.
    body = {"texts": ["x", "y"], "labels": ["cooking", "travel", "music"]}
    refused = await client.post("/v1/batch", json=body, headers=auth)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert ErrorResponse.model_validate(refused.json()).error.code == "overloaded"
    assert len(zeroshot._engines) == built
    embeddings = {"model": "all-MiniLM-L6-v2", "input": ["x", "y"]}
    assert (await client.post("/v1/embeddings", json=embeddings, headers=auth)).status_code == 503

    # One text fits; work for a trained model and bodies that are not JSON go on to their routes.
    trained = await client.post("/v1/batch", json={"texts": ["my card", "password"]}, headers=auth)
    assert trained.status_code == 200, trained.text
    broken = await client.post(
        "/v1/batch", content=b'{"texts": [', headers={**auth, "content-type": "application/json"}
    )
    assert (broken.status_code, ErrorResponse.model_validate(broken.json()).error.param) == (400, "body")

    gate.opened.set()
    assert (await in_flight).status_code == 200
    answer = await queued
    assert answer.status_code == 200, answer.text
    assert len(BatchResponse.model_validate(answer.json()).results) == 3
