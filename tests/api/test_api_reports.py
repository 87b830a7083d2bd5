"""The report API (`/v1/models/{name}/versions/{version}/report[/{plot}.png]`), the alias API
(`PUT|DELETE /v1/models/{name}/aliases/{alias}`) and the web UI's static files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from labelwise.api.schemas.errors import ErrorResponse
from labelwise.api.schemas.models import ModelDetail
from labelwise.api.schemas.reports import TrainingReport
from labelwise.domain import ModelVersion
from labelwise.training.report import write_report
from tests.api.serving_fakes import Fixture, Running, trained

pytestmark = pytest.mark.anyio

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("confusion_matrix", "reliability", "per_label_f1")
LABELS = ["card", "password", "topup"]


def metrics() -> dict[str, Any]:
    bins = [
        {"lo": i / 10, "hi": (i + 1) / 10, "count": 3, "confidence": i / 10 + 0.05, "accuracy": i / 10}
        for i in range(10)
    ]
    per_label = {label: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10} for label in LABELS}
    return {
        "task": "single_label",
        "n": 30,
        "accuracy": 0.9,
        "macro": {"precision": 0.9, "recall": 0.8, "f1": 0.85},
        "per_label": per_label,
        "ece": 0.04,
        "reliability": {"bins": bins},
        "confusion_matrix": {"labels": LABELS, "matrix": [[9, 1, 0], [0, 10, 0], [1, 1, 8]]},
    }


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One rendered report (plots take a moment to draw), copied into every version that needs one."""
    directory = tmp_path_factory.mktemp("report")
    report = {
        "engine": "serving_keyword",
        "task": "single_label",
        "labels": LABELS,
        "data": {"stats": {"train": {"path": "/srv/secret/uploads/tickets.csv", "rows_read": 30}}},
        "validation": metrics(),
        "test": metrics(),
    }
    write_report(report, directory)
    return directory


def publish_with_report(fx: Fixture, report_dir: Path, name: str = "intents") -> ModelVersion:
    def copy(directory: Path, version: str) -> None:
        shutil.copytree(report_dir, directory / "report")

    return fx.store.publish(name, trained(), metrics={"accuracy": 0.9}, data={}, extra_files=copy)


def error_of(body: dict[str, Any]) -> tuple[str, str | None]:
    error = ErrorResponse.model_validate(body).error
    return error.code, error.param


# Reports ----------------------------------------------------------------------------------------------------------


async def test_report_json_is_served_with_server_paths_reduced_to_file_names(
    running: Running, fx: Fixture, auth: dict[str, str], report_dir: Path
) -> None:
    record = publish_with_report(fx, report_dir)
    r = await running.client.get(f"/v1/models/intents/versions/{record.version}/report", headers=auth)
    assert r.status_code == 200
    report = TrainingReport.model_validate(r.json())
    assert report.labels == LABELS
    assert report.test is not None
    assert report.test["accuracy"] == 0.9
    assert r.json()["data"]["stats"]["train"] == {"path": "tickets.csv", "rows_read": 30}


@pytest.mark.parametrize("plot", PLOTS)
async def test_each_plot_is_a_png(
    running: Running, fx: Fixture, auth: dict[str, str], report_dir: Path, plot: str
) -> None:
    record = publish_with_report(fx, report_dir)
    r = await running.client.get(f"/v1/models/intents/versions/{record.version}/report/{plot}.png", headers=auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG_SIGNATURE)
    assert r.content == (report_dir / f"{plot}.png").read_bytes()


@pytest.mark.parametrize(
    "file", ["report", "manifest", "..%2Fmanifest", "..%2F..%2Fintents", "confusion_matrix.png%00", "%2e%2e"]
)
async def test_no_other_file_can_be_named(
    running: Running, fx: Fixture, auth: dict[str, str], report_dir: Path, file: str
) -> None:
    record = publish_with_report(fx, report_dir)
    r = await running.client.get(f"/v1/models/intents/versions/{record.version}/report/{file}.png", headers=auth)
    assert r.status_code in (400, 404)
    assert not r.content.startswith(PNG_SIGNATURE)
    assert b'"files"' not in r.content


async def test_report_errors_name_what_is_wrong(
    running: Running, fx: Fixture, auth: dict[str, str], report_dir: Path
) -> None:
    publish_with_report(fx, report_dir)
    cases = {
        "/v1/models/intents/versions/9.9.9/report": (404, "model_not_found"),
        "/v1/models/nope/versions/1.0.0/report": (404, "model_not_found"),
        "/v1/models/intents/versions/latest/report": (400, "invalid_request"),
        "/v1/models/Bad%20Name/versions/1.0.0/report": (400, "invalid_request"),
        # the `running` fixture's 1.0.0 was published without a report
        "/v1/models/intents/versions/1.0.0/report": (404, "not_found"),
        "/v1/models/intents/versions/1.0.0/report/reliability.png": (404, "not_found"),
    }
    for url, (status, code) in cases.items():
        r = await running.client.get(url, headers=auth)
        assert (r.status_code, error_of(r.json())[0]) == (status, code), url


async def test_report_needs_a_key(running: Running, fx: Fixture, report_dir: Path) -> None:
    record = publish_with_report(fx, report_dir)
    for suffix in ("report", "report/reliability.png"):
        r = await running.client.get(f"/v1/models/intents/versions/{record.version}/{suffix}")
        assert r.status_code == 401


async def test_a_tampered_report_is_refused(
    running: Running, fx: Fixture, auth: dict[str, str], report_dir: Path
) -> None:
    record = publish_with_report(fx, report_dir)
    path = fx.store.directory(record) / "report" / "reliability.png"
    path.write_bytes(path.read_bytes() + b"x")
    r = await running.client.get(f"/v1/models/intents/versions/{record.version}/report/reliability.png", headers=auth)
    assert r.status_code == 500
    assert error_of(r.json())[0] == "model_load_error"
    assert b"PNG" not in r.content


# Aliases ----------------------------------------------------------------------------------------------------------


async def test_admin_promotes_a_version_and_the_change_is_audited(running: Running, fx: Fixture) -> None:
    fx.publish("intents")  # 1.1.0 is now newest, so production follows it
    await running.manager.refresh()
    admin = {"x-api-key": fx.key("admin")}
    r = await running.client.put("/v1/models/intents/aliases/production", json={"version": "1.0.0"}, headers=admin)
    assert r.status_code == 200
    detail = ModelDetail.model_validate(r.json())
    assert detail.aliases["production"] == "1.0.0"
    assert running.manager.serving("intents") == "intents:1.0.0"
    [entry] = [row for row in fx.keys.repo.audit_log() if row.action == "model.alias.set"]
    assert entry.target == "intents@production"
    assert entry.details == {"version": "1.0.0", "previous": "1.1.0"}
    assert entry.actor.startswith("key:")
    assert entry.request_id == r.headers["x-request-id"]

    r = await running.client.delete("/v1/models/intents/aliases/production", headers=admin)
    assert r.status_code == 200
    assert ModelDetail.model_validate(r.json()).aliases["production"] == "1.1.0"
    assert fx.keys.repo.audit_log()[0].action == "model.alias.remove"


async def test_aliases_need_the_admin_scope(running: Running, fx: Fixture, auth: dict[str, str]) -> None:
    put = await running.client.put("/v1/models/intents/aliases/canary", json={"version": "1.0.0"}, headers=auth)
    delete = await running.client.delete("/v1/models/intents/aliases/canary", headers=auth)
    anonymous = await running.client.put("/v1/models/intents/aliases/canary", json={"version": "1.0.0"})
    assert (put.status_code, delete.status_code, anonymous.status_code) == (403, 403, 401)
    assert "canary" not in (await running.client.get("/v1/models/intents", headers=auth)).json()["aliases"]
    assert not [row for row in fx.keys.repo.audit_log() if row.action.startswith("model.alias")]


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "param"),
    [
        ("PUT", "/v1/models/intents/aliases/latest", {"version": "1.0.0"}, 400, "alias"),
        ("PUT", "/v1/models/intents/aliases/Bad", {"version": "1.0.0"}, 400, "alias"),
        ("PUT", "/v1/models/intents/aliases/canary", {"version": "2.0.0"}, 404, "version"),
        ("PUT", "/v1/models/intents/aliases/canary", {"version": "one"}, 400, "version"),
        ("PUT", "/v1/models/intents/aliases/canary", {"version": 1}, 400, "version"),
        ("PUT", "/v1/models/intents/aliases/canary", {}, 400, "version"),
        ("PUT", "/v1/models/nope/aliases/canary", {"version": "1.0.0"}, 404, "name"),
        ("DELETE", "/v1/models/intents/aliases/latest", None, 400, "alias"),
        ("DELETE", "/v1/models/intents/aliases/canary", None, 404, "alias"),
    ],
)
async def test_alias_errors_name_the_field(
    running: Running, fx: Fixture, method: str, url: str, body: Any, status: int, param: str
) -> None:
    admin = {"x-api-key": fx.key("admin")}
    r = await running.client.request(method, url, json=body, headers=admin)
    assert r.status_code == status
    assert error_of(r.json())[1] == param


# Web UI -----------------------------------------------------------------------------------------------------------


async def test_the_page_and_its_files_are_public_and_locked_down(running: Running) -> None:
    page = await running.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert 'src="ui/js/main.js"' in page.text
    script = await running.client.get("/ui/js/main.js")
    assert (script.status_code, script.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    style = await running.client.get("/ui/app.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    cached = await running.client.get("/ui/app.css", headers={"if-none-match": style.headers["etag"]})
    assert (cached.status_code, cached.content) == (304, b"")


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/../api/app.py", "/ui/%2e%2e/%2e%2e/config.py", "/ui/js", "/ui/"])
async def test_only_ui_files_are_served(running: Running, path: str) -> None:
    r = await running.client.get(path)
    # httpx resolves `..` itself, so that request reaches /api/app.py, which is no route (and needs a key)
    assert r.status_code in (401, 404)
    assert "import" not in r.text


async def test_ui_routes_are_not_in_the_openapi_document_and_the_new_api_is(running: Running) -> None:
    paths = (await running.client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [p for p in paths if p.startswith("/ui")]
    assert "/v1/models/{name}/versions/{version}/report" in paths
    assert "/v1/models/{name}/versions/{version}/report/{plot}.png" in paths
    assert {"put", "delete"} <= set(paths["/v1/models/{name}/aliases/{alias}"])
