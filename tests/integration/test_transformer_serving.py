"""An imported Hugging Face classifier behind a real `labelwise serve`: the vLLM-shaped `/classify` answers with its
`id2label` order, the same scores as the engine in process, and no serving process maps PyTorch."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from tests.api.serving_fakes import Fixture, make_settings
from tests.integration.real_server import labelwise_serve, worker_pids
from tests.support.transformers import fine_tuned_classifier
from tests.unit.engines.test_engine_conformance import single_label_data

from labelwise.engines.hf_import import import_classifier


def _maps_torch(pid: int) -> bool:
    return any("libtorch" in line for line in Path(f"/proc/{pid}/maps").read_text().splitlines())


def test_a_served_imported_classifier_answers_in_id2label_order_without_torch(tmp_path: Path) -> None:
    data = single_label_data(60, 31)
    names = fine_tuned_classifier(tmp_path / "hf", data.texts, [g[0] for g in data.labels], family="distilbert")
    engine = import_classifier(tmp_path / "hf")
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'labelwise.db'}")
    (tmp_path / "data").mkdir()
    fixture = Fixture(settings)
    fixture.publish("imported", engine)
    key = fixture.key("classify")
    fixture.close()
    texts = ["a goal for the team", "garlic pasta in the oven tonight"]
    env = {"LABELWISE_DATA_DIR": str(tmp_path / "data"), "LABELWISE_WORKERS": "1"}
    with labelwise_serve(env) as server:
        with httpx.Client(base_url=server.base, headers={"x-api-key": key}, timeout=60) as client:
            answer = client.post("/classify", json={"model": "imported", "input": texts})
            assert answer.status_code == 200, answer.text
            bad = client.post("/classify", json={"model": "imported", "input": []})
        # One worker: the server process answers itself (more workers would be its children).
        serving = {server.process.pid, *worker_pids(server)}
        assert not any(_maps_torch(pid) for pid in serving)
    rows = answer.json()["data"]
    probs = np.array([row["probs"] for row in rows])
    np.testing.assert_allclose(probs, engine.predict_proba(texts), atol=1e-5)
    assert [row["label"] for row in rows] == [names[i] for i in np.argmax(probs, axis=1)]
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "input"
