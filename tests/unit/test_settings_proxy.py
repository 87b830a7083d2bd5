"""The proxy and browser settings: a root path and CORS origins are checked when read; CORS is off by default."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from labelwise.api import create_app
from labelwise.config import Settings


def test_root_path_and_origins_are_checked() -> None:
    assert Settings(root_path="/labelwise/").root_path == "/labelwise"
    assert Settings().root_path == ""
    assert Settings().cors_origins == []
    for bad in ({"root_path": "labelwise"}, {"root_path": "/a b"}, {"cors_origins": ["https://a.example/x"]}):
        with pytest.raises(ValidationError) as info:
            Settings(**bad)  # type: ignore[arg-type]
        assert next(iter(bad)) in str(info.value)


@pytest.mark.anyio
async def test_cors_is_off_by_default(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://labelwise.test") as client:
        headers = {"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
        answer = await client.options("/v1/classify", headers=headers)
    assert "access-control-allow-origin" not in answer.headers


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
