"""The round trip through a real Label Studio and a real `labelwise serve` (two workers): the review queue goes
out as tasks with our predictions, a person's annotations (made through Label Studio's API) come back as feedback,
a retrain uses them, and the new version is better on the texts the person corrected. Label Studio's own export
also trains a model directly.

Label Studio runs from its own virtualenv, which `make install` makes once per machine in ~/.cache/labelwise
(tests/support/label_studio.py); without it this module is skipped, and fails under LABELWISE_REQUIRE_SERVICES
(CI). It is the one module that starts Label Studio: seconds on a copy of its migrated template database (the first
run on a machine migrates the template, minutes).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.api.serving_fakes import Fixture, make_settings, wait_all_ready, wait_until
from tests.conftest import encoder_cache_dir, shared_data_dir
from tests.support import label_studio as ls
from tests.support.services import require_service

from labelwise.data.labelstudio import annotation, labeling_config
from labelwise.services.training import ModelService, TrainRequest

pytestmark = pytest.mark.slow

REVIEWED = 48  # test texts a person reviews


@dataclass
class Setup:
    base: str
    admin: str
    env: dict[str, str]
    studio: ls.LabelStudio
    project: int
    gold: dict[str, str]  # the reviewed texts and their right labels
    data_dir: Path


def _rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()[:limit]]


def _run_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    code = f"from labelwise.cli.app import app; app({list(args)!r})"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if ls.command() is None:
        require_service(f"Label Studio is not installed in {ls.home()} (make install makes it)")
    trec = shared_data_dir() / "trec"
    if not trec.exists():
        require_service("the shared datasets are not available (LABELWISE_SHARED_DATA)")
    tmp_path = tmp_path_factory.mktemp("label-studio")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Version 1.0.0 learns from few rows, so it is often wrong on the test texts a person will review.
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in _rows(trec / "train.jsonl", 300)))
    settings = make_settings(data_dir, f"sqlite:///{data_dir / 'labelwise.db'}")
    fixture = Fixture(settings)
    ModelService(fixture.store).train(TrainRequest(name="questions", train=train_file))
    admin = fixture.key("admin")
    fixture.close()
    gold = {r["text"]: r["label"] for r in _rows(trec / "test.jsonl", REVIEWED)}

    with ls.label_studio(tmp_path) as studio:
        with studio.client() as client:
            labels = sorted({r["label"] for r in _rows(trec / "train.jsonl", 300)})
            created = client.post("/api/projects", json={"title": "review", "label_config": labeling_config(labels)})
            assert created.status_code == 201, created.text
        port = ls._free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_")}
        env |= {
            "LABELWISE_DATA_DIR": str(data_dir),
            "LABELWISE_PORT": str(port),
            "LABELWISE_ENCODER_DIR": str(encoder_cache_dir()),
            "LABELWISE_LOG_RAW_TEXT": "true",
            "LABELWISE_PREDICTION_LOG_FLUSH_SECONDS": "0.2",
            "LABELWISE_LABEL_STUDIO_URL": studio.url,
            "LABELWISE_LABEL_STUDIO_TOKEN": studio.token,
        }
        log = tmp_path / "server.log"
        with log.open("w") as stderr:
            code = "from labelwise.cli.app import app; app(['serve'])"
            process = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=stderr, text=True)
        try:
            wait_all_ready(f"http://127.0.0.1:{port}")
            yield Setup(f"http://127.0.0.1:{port}", admin, env, studio, created.json()["id"], gold, data_dir)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        assert "Traceback" not in log.read_text()
        assert studio.token not in log.read_text()  # the token is a secret


def _accuracy(setup: Setup, ref: str) -> float:
    texts = list(setup.gold)
    body = {"texts": texts, "model": ref, "min_confidence": 0, "min_margin": 0}
    answers: list[httpx.Response] = []

    def served() -> bool:
        # A version published a moment ago reaches each server worker at its next model poll (2 s): until then
        # that worker answers model_not_found. A fresh connection per try, so a slow worker does not hold it.
        with httpx.Client(base_url=setup.base, timeout=60) as client:
            answers.append(client.post("/v1/batch", json=body, headers={"x-api-key": setup.admin}))
        return answers[-1].status_code == 200

    wait_until(served, timeout=60, interval=0.5)
    results = answers[-1].json()["results"]
    return sum(res["predicted"] == [setup.gold[t]] for t, res in zip(texts, results, strict=True)) / len(texts)


def test_review_round_trip_makes_the_next_version_better(setup: Setup) -> None:
    admin = {"x-api-key": setup.admin}
    texts = list(setup.gold)
    with httpx.Client(base_url=setup.base, timeout=60) as client:
        # Live traffic: the prediction log keeps the texts (raw-text logging is on) for the review queue.
        assert client.post("/v1/batch", json={"texts": texts}, headers=admin).status_code == 200
        wait_until(lambda: len(client.get("/v1/review", params={"limit": 500}, headers=admin).json()["items"])
                   == REVIEWED, timeout=30)  # fmt: skip
        queue = client.get("/v1/review", params={"limit": 500}, headers=admin).json()["items"]
        abstained = [item["abstained"] for item in queue]
        assert abstained == sorted(abstained, reverse=True)  # abstained first
        sent = client.post(
            "/v1/review/label-studio/export",
            json={"model": "questions", "project": setup.project, "limit": 500},
            headers=admin,
        )
        assert sent.status_code == 200, sent.text
        assert sent.json()["sent"] == REVIEWED
        assert sent.json()["abstained"] == sum(abstained)
        # A second export (a second click) adds nothing: every text is already in the project.
        again = client.post(
            "/v1/review/label-studio/export",
            json={"model": "questions", "project": setup.project, "limit": 500},
            headers=admin,
        )
        assert again.json() == {"project": setup.project, "sent": 0, "abstained": 0, "already_there": REVIEWED}

    with setup.studio.client() as studio:
        tasks = studio.get("/api/tasks", params={"project": setup.project, "page_size": 500}).json()["tasks"]
        assert len(tasks) == REVIEWED
        for task in tasks:
            # Our prediction came along as the pre-annotation the person starts from.
            prediction = studio.get(f"/api/predictions/?task={task['id']}").json()
            assert prediction[0]["model_version"] == "questions:1.0.0"
            # The person's answer: the right label (Label Studio's choices are the model's labels).
            made = studio.post(
                f"/api/tasks/{task['id']}/annotations/",
                json={"result": [annotation([setup.gold[task["data"]["text"]]])], "was_cancelled": False},
            )
            assert made.status_code == 201, made.text

    imported = _run_cli(setup.env, "review", "import", "questions", "--project", str(setup.project), "--json")
    assert imported == {"project": setup.project, "imported": REVIEWED, "unannotated": 0, "unknown_labels": {}}
    before = _accuracy(setup, "questions:1.0.0")
    trained = _run_cli(setup.env, "train", "--name", "questions", "--with-feedback", "--json")
    assert trained["version"] == "1.1.0"
    after = _accuracy(setup, "questions:1.1.0")
    assert before < 0.95
    assert after > before


def test_label_studio_export_trains_a_model(setup: Setup, tmp_path: Path) -> None:
    with setup.studio.client() as studio:
        export = studio.get(f"/api/projects/{setup.project}/export", params={"exportType": "JSON"})
    assert export.status_code == 200
    path = tmp_path / "export.json"
    path.write_bytes(export.content)
    trained = _run_cli(setup.env, "train", str(path), "--name", "from-studio", "--min-examples", "1", "--json")
    # Every task was annotated with its right label: the model knows each label the person chose.
    assert (trained["version"], trained["labels"]) == ("1.0.0", len(set(setup.gold.values())))


def test_a_missing_project_is_named(setup: Setup) -> None:
    with httpx.Client(base_url=setup.base, timeout=60) as client:
        missing = client.post(
            "/v1/review/label-studio/export",
            json={"model": "questions", "project": 9999},
            headers={"x-api-key": setup.admin},
        )
    assert missing.status_code == 400, missing.text
    assert missing.json()["error"]["param"] == "project"
