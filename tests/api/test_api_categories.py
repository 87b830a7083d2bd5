"""The categories API, `POST /text/classification`: score shapes per type, threshold, trained models, and every
error code in its flat shape (middleware refusals included)."""

from __future__ import annotations

from typing import Any

import pytest

from labelwise.api.schemas.compat import CategoriesError, TextClassificationResponse
from labelwise.services.keys import KeyChanges
from tests.api.serving_fakes import Fixture, Running

pytestmark = pytest.mark.anyio

CATEGORIES = [
    {"key": "food", "description": "recipes, cooking and restaurants"},
    {"key": "sport", "description": "games, matches and athletes"},
    {"key": "money", "description": "banks, prices and payments"},
]
TEXT = "The chef baked fresh bread and a lemon cake"


async def post(running: Running, key: str, **body: Any) -> Any:
    return await running.client.post("/text/classification", json=body, headers={"Authorization": f"Bearer {key}"})


async def scores(running: Running, key: str, **body: Any) -> TextClassificationResponse:
    r = await post(running, key, **body)
    assert r.status_code == 200, r.text
    return TextClassificationResponse.model_validate(r.json())


async def test_types_give_their_score_shapes(running: Running, key: str) -> None:
    exclusive = await scores(running, key, text=TEXT, type="exclusive", categories=CATEGORIES)
    assert list(exclusive.data) == ["food", "sport", "money"]
    assert sum(exclusive.data.values()) == pytest.approx(1.0)
    assert max(exclusive.data, key=exclusive.data.__getitem__) == "food"
    confidence = await scores(running, key, text=TEXT, type="confidence", categories=CATEGORIES)
    assert sum(confidence.data.values()) != pytest.approx(1.0)
    binary = await scores(running, key, text=TEXT, type="binary", categories=CATEGORIES)
    assert set(binary.data.values()) <= {0.0, 1.0}
    assert binary.data["food"] == 1.0
    assert binary.data["sport"] == 0.0
    assert exclusive.metadata.cost == running.app.container.settings.credit_prices["zeroshot"]


async def test_threshold_drops_low_scores(running: Running, key: str) -> None:
    answer = await scores(running, key, text=TEXT, type="exclusive", threshold=0.5, categories=CATEGORIES)
    assert list(answer.data) == ["food"]


async def test_a_trained_model_whose_labels_are_the_keys(running: Running, key: str) -> None:
    categories = [{"key": k} for k in ("topup", "card", "password")]
    answer = await scores(running, key, text="my card has not arrived", model="intents", categories=categories)
    assert set(answer.data) == {"topup", "card", "password"}
    assert max(answer.data, key=answer.data.__getitem__) == "card"
    r = await post(running, key, text="card", model="intents", categories=[{"key": "card"}, {"key": "other"}])
    assert (r.status_code, r.json()["code"]) == (400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ({"text": "x" * 2001}, "INPUT_TOO_LONG", "2,001 characters, the limit is 2,000"),
        ({"categories": [{"key": f"k{i}"} for i in range(26)]}, "INVALID_REQUEST", "26 labels, the limit is 25"),
        ({"categories": [{"key": "k" * 26}, {"key": "b"}]}, "INVALID_REQUEST", "the limit is 25"),
        ({"categories": [{"key": "a-b"}, {"key": "b"}]}, "INVALID_REQUEST", "letters, digits and spaces"),
        ({"categories": [{"key": "a", "description": "d" * 151}, {"key": "b"}]}, "INVALID_REQUEST", "151"),
        ({"threshold": 1.5}, "INVALID_REQUEST", "between 0 and 1"),
        ({"categories": [{"key": "a"}]}, "INVALID_REQUEST", "at least 2"),
        ({"type": "fuzzy"}, "INVALID_PAYLOAD", "type"),
        ({"text": 42}, "INVALID_PAYLOAD", "text"),
        ({"model": "nope"}, "INVALID_REQUEST", "nope"),
    ],
)
async def test_bad_requests(running: Running, key: str, body: dict[str, Any], code: str, fragment: str) -> None:
    r = await post(running, key, **{"text": TEXT, "type": "exclusive", "categories": CATEGORIES, **body})
    assert r.status_code == 400, r.text
    error = CategoriesError.model_validate(r.json())
    assert error.code == code
    assert fragment in error.error


async def test_malformed_json_is_invalid_payload(running: Running, key: str) -> None:
    r = await running.client.post("/text/classification", content=b"{oops", headers={"Authorization": f"Bearer {key}"})
    assert (r.status_code, CategoriesError.model_validate(r.json()).code) == (400, "INVALID_PAYLOAD")


async def test_unauthorized(running: Running) -> None:
    r = await running.client.post("/text/classification", json={"text": "a"}, headers={"Authorization": "Bearer x"})
    assert (r.status_code, CategoriesError.model_validate(r.json()).code) == (401, "UNAUTHORIZED")


async def test_out_of_credits_is_400_here(running: Running, fx: Fixture) -> None:
    key, _ = fx.keys.create("poor", ["classify"], settings=KeyChanges(credits=1))
    r = await post(running, key, text=TEXT, type="exclusive", categories=CATEGORIES)
    assert (r.status_code, CategoriesError.model_validate(r.json()).code) == (400, "INSUFFICIENT_BALANCE")


async def test_rate_limited_is_429(running: Running, fx: Fixture) -> None:
    key, _ = fx.keys.create("slow", ["classify"], settings=KeyChanges(rate_limit="1/minute"))
    await post(running, key, text=TEXT, type="exclusive", categories=CATEGORIES)
    r = await post(running, key, text=TEXT, type="exclusive", categories=CATEGORIES)
    assert r.status_code == 429
    assert CategoriesError.model_validate(r.json()).code == "TOO_MANY_REQUESTS"
    assert "retry-after" in r.headers
