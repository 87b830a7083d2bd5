"""Reading a model version's training report and its plots, checked against the version's manifest."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from pathlib import PurePath
from typing import Any

import orjson

from labelwise.domain import ModelVersion
from labelwise.errors import InvalidRequest, ModelLoadError, NotFound
from labelwise.registry.store import VERSION_RE, ModelStore, check_name

REPORT_DIR = "report"


class ReportPlot(StrEnum):
    """The plots a training report may hold; the only files the report API hands out besides `report.json`."""

    CONFUSION_MATRIX = "confusion_matrix"
    RELIABILITY = "reliability"
    PER_LABEL_F1 = "per_label_f1"


class ReportService:
    """Finds a version's report files and returns their bytes once they match the sealed manifest.

    Only fixed file names are ever joined to the version directory, so no request can name another file.
    """

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def report(self, name: str, version: str) -> dict[str, Any]:
        """The training report of `name:version` as a dict, with server file paths reduced to file names."""
        record = self._record(name, version)
        report: dict[str, Any] = orjson.loads(self._read(record, "report.json"))
        return redact_paths(report)

    def plot(self, name: str, version: str, plot: ReportPlot) -> bytes:
        """The PNG bytes of one plot of `name:version`'s report; `NotFound` when the report has no such plot."""
        return self._read(self._record(name, version), f"{plot.value}.png")

    def _record(self, name: str, version: str) -> ModelVersion:
        check_name(name, param="name")
        if not VERSION_RE.match(version):
            raise InvalidRequest(f"version: {version[:40]!r} is not MAJOR.MINOR.PATCH", param="version")
        return self.store.get(name, version)

    def _read(self, record: ModelVersion, filename: str) -> bytes:
        relative = f"{REPORT_DIR}/{filename}"
        expected = self.store.manifest(record).get("files", {}).get(relative)
        if expected is None:
            what = "a training report" if filename == "report.json" else f"the plot {filename}"
            raise NotFound(f"model {record.name} version {record.version} has no {what}")
        try:
            data = (self.store.directory(record) / relative).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"{record.ref}: artifact {relative} missing") from exc
        if hashlib.sha256(data).hexdigest() != expected:
            raise ModelLoadError(f"{record.ref}: artifact {relative} failed its checksum")
        return data


def redact_paths(report: dict[str, Any]) -> dict[str, Any]:
    """Replace the training files' server paths (`data.stats.<split>.path`) with their file names.

    A key with the `classify` scope may read reports; where the server keeps its uploads is none of its business.
    """
    data = report.get("data")
    stats = data.get("stats") if isinstance(data, dict) else None
    if isinstance(stats, dict):
        for split in stats.values():
            if isinstance(split, dict) and isinstance(split.get("path"), str):
                split["path"] = PurePath(split["path"]).name
    return report
