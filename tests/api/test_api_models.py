"""`GET /v1/models` and `GET /v1/models/{name}`, `/health`, `/ready` and the OpenAPI document."""

from __future__ import annotations

import pytest

from labelwise.api.schemas.errors import ErrorResponse
from labelwise.api.schemas.health import Readiness
from labelwise.api.schemas.models import ModelDetail, ModelList, ModelSummary
from tests.api.serving_fakes import Fixture, Running

pytestmark = pytest.mark.anyio


async def test_list_models_in_openai_shape_with_versions(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    fx.publish("intents")
    fx.store.set_alias("intents", "canary", "1.0.0")
    await running.manager.refresh()
    r = await running.client.get("/v1/models", headers=auth)
    listing = ModelList.model_validate(r.json())
    assert listing.object == "list"
    [model] = [m for m in listing.data if isinstance(m, ModelSummary)]  # the embedding model has no versions
    assert (model.id, model.object) == ("intents", "model")
    assert [v.version for v in model.versions] == ["1.1.0", "1.0.0"]
    assert model.aliases == {"production": "1.1.0", "latest": "1.1.0", "canary": "1.0.0"}


async def test_model_detail_has_labels_in_column_order(running: Running, auth: dict[str, str]) -> None:
    r = await running.client.get("/v1/models/intents", headers=auth)
    detail = ModelDetail.model_validate(r.json())
    assert detail.versions[0].labels == ["card", "password", "topup"]
    assert detail.versions[0].metrics == {"accuracy": 1.0}
    missing = await running.client.get("/v1/models/nope", headers=auth)
    assert (missing.status_code, ErrorResponse.model_validate(missing.json()).error.param) == (404, "name")
    bad = await running.client.get("/v1/models/Bad%20Name", headers=auth)
    assert bad.status_code == 400


async def test_health_and_ready(running: Running) -> None:
    assert (await running.client.get("/health")).json() == {"status": "ok"}
    ready = Readiness.model_validate((await running.client.get("/ready")).json())
    assert ready.ready
    assert ready.database
    assert ready.models_loaded
    assert ready.loaded == ["intents:1.0.0"]


async def test_ready_is_503_when_the_database_is_unreachable(running: Running) -> None:
    running.app.container.db.ping = lambda: False
    r = await running.client.get("/ready")
    assert r.status_code == 503
    assert Readiness.model_validate(r.json()).database is False


async def test_openapi_documents_examples_auth_and_400(running: Running) -> None:
    doc = (await running.client.get("/openapi.json")).json()
    classify = doc["paths"]["/v1/classify"]["post"]
    assert "Classify one text" in classify["description"]
    assert {"400", "401", "403", "404", "413", "503"} <= set(classify["responses"])
    assert "422" not in classify["responses"]
    assert classify["security"]
    assert "security" not in doc["paths"]["/health"]["get"]
    schemas = doc["components"]["schemas"]
    for name in ("ClassifyRequest", "ClassifyResponse", "BatchRequest", "BatchResponse", "ErrorResponse", "ModelList"):
        assert schemas[name].get("examples"), name
