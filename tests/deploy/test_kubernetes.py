"""The manifests in deploy/kubernetes validate against the Kubernetes schemas and set only real settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.settings_names import CLIENT_VARIABLES, REPO, names_in, unknown_settings

MANIFESTS = REPO / "deploy" / "kubernetes"
# The oldest Kubernetes still commonly run that has every API version used here (autoscaling/v2, policy/v1).
KUBERNETES_VERSION = "1.27"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(f"{path.name}#{i}", doc) for i, doc in enumerate(yaml.safe_load_all(path.read_text())) if doc]
    return out


DOCUMENTS = _documents()
KINDS = {doc["kind"] for _, doc in DOCUMENTS}


def test_the_issue_asks_for_every_kind() -> None:
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "Job",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    } <= KINDS


@pytest.mark.parametrize(("where", "doc"), [d for d in DOCUMENTS if d[1]["kind"] != "ServiceMonitor"])
def test_manifest_is_valid_kubernetes(where: str, doc: dict[str, Any]) -> None:
    # strict: a field the schema does not know (a typo like `readinessprobe`) is an error, not ignored.
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_misspelt_field() -> None:
    deployment = next(doc for _, doc in DOCUMENTS if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_servicemonitor_matches_its_schema() -> None:
    # A CRD: kubernetes-validate ships no schema for it, so it is checked against the fields we rely on.
    schema = json.loads((Path(__file__).parent / "servicemonitor.schema.json").read_text())
    monitors = [doc for _, doc in DOCUMENTS if doc["kind"] == "ServiceMonitor"]
    assert monitors
    for doc in monitors:
        jsonschema.validate(doc, schema)
    broken = json.loads(json.dumps(monitors[0]))
    broken["spec"]["endpoints"][0]["pathh"] = "/metrics"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = set(kustomization["resources"])
    present = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_probes_and_resources_of_the_api() -> None:
    api = next(doc for _, doc in DOCUMENTS if doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("api"))
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"]["cpu"]
    selector = api["spec"]["selector"]["matchLabels"]
    for kind in ("Service", "PodDisruptionBudget", "ServiceMonitor"):
        doc = next(doc for _, doc in DOCUMENTS if doc["kind"] == kind)
        wanted = doc["spec"]["selector"].get("matchLabels", doc["spec"]["selector"])
        assert wanted == selector, kind


def test_every_container_runs_a_real_command_as_non_root() -> None:
    from labelwise.cli.app import app

    commands = {c.name for c in app.registered_commands}
    for where, doc in DOCUMENTS:
        template = doc.get("spec", {}).get("template", {}).get("spec")
        if template is None:
            continue
        assert template["securityContext"]["runAsNonRoot"] is True, where
        for container in template["containers"]:
            assert container["args"][0] in commands, where


def test_manifests_name_only_real_settings() -> None:
    names: set[str] = set()
    for path in MANIFESTS.glob("*.yaml"):
        names |= names_in(path.read_text())
    config = next(doc for _, doc in DOCUMENTS if doc["kind"] == "ConfigMap")
    assert set(config["data"]) <= names  # the keys themselves are found, not only names in comments
    assert len(names) >= 8
    assert unknown_settings(names) == []


def test_a_made_up_setting_is_caught() -> None:
    assert unknown_settings({"LABELWISE_DATA_DIR", "LABELWISE_DATABASE_URL"}) == []
    assert unknown_settings({"LABELWISE_REPLICAS", "LABELWISE_DB_URL"}) == ["LABELWISE_DB_URL", "LABELWISE_REPLICAS"]


def test_client_variables_are_read_by_the_client() -> None:
    for name, module in CLIENT_VARIABLES.items():
        assert name in (REPO / "src" / "labelwise" / module).read_text(), name
