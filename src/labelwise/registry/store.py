"""The model store.

Layout on disk: `<root>/<name>/<version>-<random>/` holding `engine/` (the engine's data files), the training report and
`manifest.json` (sha256 of every file). The database row of a version is committed only after its directory is
complete and renamed into place, so a reader never sees a half-written version; the row keeps the sha256 of the
manifest, and loading checks every file against it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from labelwise.domain import ModelVersion
from labelwise.engines.base import Engine, TextEncoder
from labelwise.engines.factory import load_engine
from labelwise.errors import ConfigError, Conflict, InvalidRequest, ModelLoadError, ModelNotFound
from labelwise.storage.repositories import ModelRepository

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
# Aliases computed from the version list; they cannot be set by hand.
DERIVED_ALIASES = frozenset({"latest"})

# Called with (version directory being staged, version number) to add files such as the training report.
ArtifactWriter = Callable[[Path, str], None]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed model reference: `name`, `name@alias` or `name:version`."""

    name: str
    alias: str | None = None
    version: str | None = None


def parse_ref(ref: str, *, param: str = "model") -> ModelRef:
    """Parse `name`, `name@alias` or `name:version`; `InvalidRequest` naming `param` when malformed."""
    if "@" in ref:
        name, alias = ref.split("@", 1)
        check_name(name, param=param)
        check_alias(alias, param=param)
        return ModelRef(name, alias=alias)
    if ":" in ref:
        name, version = ref.split(":", 1)
        check_name(name, param=param)
        if not VERSION_RE.match(version):
            raise InvalidRequest(f"{param}: version {version!r} is not MAJOR.MINOR.PATCH", param=param)
        return ModelRef(name, version=version)
    check_name(ref, param=param)
    return ModelRef(ref)


def check_name(name: str, *, param: str = "name") -> None:
    if not NAME_RE.match(name):
        raise InvalidRequest(
            f"{param}: {name[:80]!r} is not a valid model name (1-64 characters: lowercase letters, digits, "
            "'.', '_' and '-', starting with a letter or digit)",
            param=param,
        )


def check_alias(alias: str, *, param: str = "alias") -> None:
    if not ALIAS_RE.match(alias):
        raise InvalidRequest(
            f"{param}: {alias[:40]!r} is not a valid alias (1-32 characters: lowercase letters, digits, '_' "
            "and '-', starting with a letter)",
            param=param,
        )


def next_version(previous: ModelVersion | None, labels: list[str]) -> str:
    """Semantic versioning of models: same label set -> minor bump, changed label set -> major bump."""
    if previous is None:
        return "1.0.0"
    major, minor, _ = (int(p) for p in previous.version.split("."))
    if sorted(previous.labels) == sorted(labels):
        return f"{major}.{minor + 1}.0"
    return f"{major + 1}.0.0"


def _sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _fsync_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


class ModelStore:
    """Publishes, finds, loads and deletes model versions. Safe to read from one process while another writes."""

    def __init__(self, root: Path, repository: ModelRepository, *, encoder: TextEncoder | None = None) -> None:
        """`encoder`: the sentence encoder given to the engines that need one, when they are loaded or created
        for training (the composition root passes one that loads its model on first use)."""
        self.root = root
        self.repo = repository
        self.encoder = encoder

    # Writing -------------------------------------------------------------------------------------------------

    def publish(
        self,
        name: str,
        engine: Engine,
        *,
        metrics: dict[str, Any],
        data: dict[str, Any],
        extra_files: ArtifactWriter | None = None,
    ) -> ModelVersion:
        """Store a fitted engine as the next version of `name` and return it.

        `extra_files(directory, version)` may write more files (the training report) into the version directory
        before it is sealed. The version number is chosen from the previous version's label set.
        """
        check_name(name)
        engine.check_fitted()
        staging = self.root / name / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            (staging / "engine").mkdir()
            engine.save(staging / "engine")
            return self._commit(name, engine, staging, extra_files, metrics=metrics, data=data)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _write_manifest(self, directory: Path, engine: Engine) -> str:
        files = {
            str(p.relative_to(directory)): _sha256_file(p)
            for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != "manifest.json"
        }
        manifest = {"engine": engine.name, "labels": engine.classes_, "files": files}
        raw = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        (directory / "manifest.json").write_bytes(raw)
        return hashlib.sha256(raw).hexdigest()

    def _commit(
        self,
        name: str,
        engine: Engine,
        staging: Path,
        extra_files: ArtifactWriter | None,
        *,
        metrics: dict[str, Any],
        data: dict[str, Any],
    ) -> ModelVersion:
        # Two trainers may publish the same name at once: the unique constraint decides, the loser takes the next.
        for _ in range(5):
            versions = self.repo.versions(name)
            version = next_version(versions[0] if versions else None, engine.classes_)
            if extra_files is not None:
                extra_files(staging, version)
            sha = self._write_manifest(staging, engine)
            _fsync_tree(staging)
            # A unique directory per attempt: a concurrent publisher racing for the same number never collides
            # on disk, and only the row that wins the unique constraint ever points at its directory.
            final = self.root / name / f"{version}-{uuid.uuid4().hex[:8]}"
            staging.rename(final)
            record = ModelVersion(
                name=name,
                version=version,
                engine=engine.name,
                task=engine.task_,
                labels=list(engine.classes_),
                created_at=datetime.now(UTC),
                sha256=sha,
                path=str(final.relative_to(self.root)),
                metrics=metrics,
                thresholds=[float(t) for t in engine.thresholds_] if engine.thresholds_ is not None else None,
                data=data,
                params=engine.get_params(),
            )
            try:
                self.repo.add(record)
            except Conflict:
                final.rename(staging)
                continue
            logger.info("model published", extra={"model": name, "version": version, "engine": engine.name})
            return self.get(name, version)
        raise Conflict(f"could not publish {name}: too many concurrent publishers")

    def set_alias(self, name: str, alias: str, version: str) -> ModelVersion:
        """Point `alias` at a version of `name`; returns that version."""
        check_alias(alias)
        if alias in DERIVED_ALIASES:
            raise InvalidRequest(f"alias: {alias!r} is computed and cannot be set", param="alias")
        self.repo.set_alias(name, alias, version)
        return self.get(name, version)

    def remove_alias(self, name: str, alias: str) -> None:
        """Drop an explicit alias (`production` then follows the newest version again)."""
        if not self.repo.remove_alias(name, alias):
            raise ModelNotFound(f"model {name} has no alias {alias}", param="alias")

    def delete(self, name: str, version: str | None = None) -> list[ModelVersion]:
        """Delete a version (or the whole model): rows first, so no reader resolves to a removed directory."""
        removed = self.repo.delete(name, version)
        for record in removed:
            shutil.rmtree(self.root / record.path, ignore_errors=True)
        if version is None:
            shutil.rmtree(self.root / name, ignore_errors=True)
        return removed

    # Reading -------------------------------------------------------------------------------------------------

    def all(self) -> dict[str, list[ModelVersion]]:
        """Every model with its versions, newest first."""
        return self.repo.all_versions()

    def versions(self, name: str) -> list[ModelVersion]:
        versions = self.repo.versions(name)
        if not versions:
            raise ModelNotFound(f"model {name!r} not found", param="model")
        return versions

    def get(self, name: str, version: str) -> ModelVersion:
        for record in self.versions(name):
            if record.version == version:
                return record
        raise ModelNotFound(f"model {name!r} has no version {version}", param="model")

    def resolve(self, ref: str, *, param: str = "model") -> ModelVersion:
        """The version a reference names: `name` (its production alias), `name@alias` or `name:version`."""
        parsed = parse_ref(ref, param=param)
        versions = self.repo.versions(parsed.name)
        if not versions:
            raise ModelNotFound(f"{param}: model {parsed.name!r} not found", param=param)
        if parsed.version is not None:
            wanted = parsed.version
            match = [v for v in versions if v.version == wanted]
            if not match:
                raise ModelNotFound(f"{param}: model {parsed.name!r} has no version {wanted}", param=param)
            return match[0]
        alias = parsed.alias or "production"
        for record in versions:
            if alias in record.aliases:
                return record
        raise ModelNotFound(f"{param}: model {parsed.name!r} has no alias {alias!r}", param=param)

    def directory(self, record: ModelVersion) -> Path:
        return self.root / record.path

    def manifest(self, record: ModelVersion) -> dict[str, Any]:
        """A version's manifest (each artifact's sha256), checked against the sha256 stored for the version;
        `ModelLoadError` when it is missing or does not match."""
        try:
            raw = (self.directory(record) / "manifest.json").read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"{record.ref}: manifest missing") from exc
        if hashlib.sha256(raw).hexdigest() != record.sha256:
            raise ModelLoadError(f"{record.ref}: manifest checksum mismatch")
        manifest: dict[str, Any] = orjson.loads(raw)
        return manifest

    def verify(self, record: ModelVersion) -> None:
        """Check the manifest and every file against the stored sha256; `ModelLoadError` on any mismatch."""
        directory = self.directory(record)
        for rel, expected in self.manifest(record)["files"].items():
            path = directory / rel
            if not path.is_file() or _sha256_file(path) != expected:
                raise ModelLoadError(f"{record.ref}: artifact {rel} failed its checksum")

    def load(self, record: ModelVersion) -> Engine:
        """Verify and load a version's engine. Any failure is a `ModelLoadError`; nothing half-loaded escapes."""
        self.verify(record)
        try:
            return load_engine(record.engine, self.directory(record) / "engine", encoder=self.encoder)
        except (ModelLoadError, ConfigError):
            raise
        except Exception as exc:
            raise ModelLoadError(f"{record.ref}: could not load engine {record.engine}") from exc
