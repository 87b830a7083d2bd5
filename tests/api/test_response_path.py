"""One response path for every inference surface: each answers with the same headers, records usage and writes
an access log line with the same fields (api/respond.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from labelwise.api.schemas.usage import UsageResponse
from labelwise.config import Settings
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import Fixture, Running, make_settings
from tests.llm_upstream import MODEL_ALIAS

pytestmark = pytest.mark.anyio

TEXT = "my card has not arrived"
# (route, body, how the key is sent): the native API, vLLM, OpenAI embeddings, the categories and labels APIs,
# and generation (native, streamed, OpenAI chat) through the real llama.cpp upstream.
SURFACES: dict[str, tuple[str, dict[str, Any], str]] = {
    "native": ("/v1/classify", {"text": TEXT}, "x-api-key"),
    "native-batch": ("/v1/batch", {"texts": [TEXT]}, "x-api-key"),
    "vllm": ("/classify", {"model": "intents", "input": [TEXT]}, "Bearer"),
    "embeddings": ("/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": TEXT}, "Bearer"),
    "categories": (
        "/text/classification",
        {"text": TEXT, "type": "exclusive", "categories": [{"key": "card"}, {"key": "weather"}]},
        "Bearer",
    ),
    "labels": ("/classification", {"text": TEXT, "labels": ["card", "weather"]}, "Token"),
    "generate": ("/v1/generate", {"prompt": TEXT, "max_tokens": 2}, "x-api-key"),
    "generate-stream": ("/v1/generate/stream", {"prompt": TEXT, "max_tokens": 2}, "x-api-key"),
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": TEXT}], "max_tokens": 2}, "Bearer"),
}
SCOPES = ["classify", "generate"]
STREAMED = {"generate-stream"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, llm_upstream: str) -> Settings:
    """The API tests' settings, with the session's language-model upstream."""
    return make_settings(tmp_path / "data", database_url, llm_url=llm_upstream, llm_model=MODEL_ALIAS)


# Every answer of a metered, rate-limited key carries these (besides content-type and content-length).
HEADERS = {
    "x-request-id",
    "x-queue-time",
    "x-inference-time",
    "x-credits-cost",
    "x-credits-remaining",
    "ratelimit",
    "ratelimit-policy",
}
LOG_FIELDS = {
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "key_prefix",
    "model",
    "version",
    "texts",
    "queue_ms",
    "inference_ms",
}


def ours(headers: Any) -> set[str]:
    return {name for name in headers if name.startswith(("x-", "ratelimit"))}


@pytest.mark.parametrize("surface", list(SURFACES))
async def test_every_surface_shares_headers_usage_and_log_fields(
    surface: str, running: Running, fx: Fixture, caplog: pytest.LogCaptureFixture
) -> None:
    route, body, scheme = SURFACES[surface]
    key, info = fx.keys.create("metered", SCOPES, settings=KeyChanges(credits=1000, rate_limit="1000/minute"))
    sent = {"x-api-key": key} if scheme == "x-api-key" else {"Authorization": f"{scheme} {key}"}
    with caplog.at_level(logging.INFO, logger="labelwise.api.access"):
        r = await running.client.post(route, json=body, headers=sent)
    assert r.status_code == 200, r.text
    assert ours(r.headers) == HEADERS
    assert float(r.headers["x-queue-time"]) >= 0
    assert float(r.headers["x-inference-time"]) >= 0
    assert int(r.headers["x-credits-remaining"]) == 1000 - int(r.headers["x-credits-cost"])

    lines = [rec for rec in caplog.records if getattr(rec, "request_id", None) == r.headers["x-request-id"]]
    assert len(lines) == 1
    line = lines[0].__dict__
    assert set(line) >= LOG_FIELDS
    assert (line["route"], line["status"], line["texts"], line["key_prefix"]) == (route, 200, 1, info.prefix)
    assert str(line["queue_ms"]) == r.headers["x-queue-time"]

    usage = await running.client.get("/v1/usage", headers={"x-api-key": key})
    rows = UsageResponse.model_validate(usage.json()).data
    charged = int(r.headers["x-credits-cost"])
    if surface in STREAMED:  # the headers left before the tokens were counted: they carry the reservation
        assert len(rows) == 1
        assert 1 <= rows[0].credits <= charged
        charged = rows[0].credits
    assert [(row.route, row.requests, row.texts, row.credits) for row in rows] == [(route, 1, 1, charged)]
