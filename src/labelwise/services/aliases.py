"""Moving and removing model aliases (promotion), each change recorded in the audit log."""

from __future__ import annotations

from labelwise.domain import ModelVersion
from labelwise.errors import InvalidRequest, ModelNotFound
from labelwise.registry.store import DERIVED_ALIASES, VERSION_RE, ModelStore, check_alias, check_name
from labelwise.storage.repositories import KeyRepository


class AliasService:
    """Points aliases such as `production` or `canary` at versions, and removes them, with an audit trail."""

    def __init__(self, store: ModelStore, audit: KeyRepository) -> None:
        self.store = store
        self.audit = audit

    def set(self, name: str, alias: str, version: str, *, actor: str, request_id: str | None = None) -> ModelVersion:
        """Point `name@alias` at `version` (created or moved) and return that version."""
        check_name(name, param="name")
        check_alias(alias, param="alias")
        if not VERSION_RE.match(version):
            raise InvalidRequest(f"version: {version[:40]!r} is not MAJOR.MINOR.PATCH", param="version")
        previous = self._current(name, alias)
        record = self.store.set_alias(name, alias, version)
        self.audit.audit(
            actor, "model.alias.set", f"{name}@{alias}", {"version": version, "previous": previous}, request_id
        )
        return record

    def remove(self, name: str, alias: str, *, actor: str, request_id: str | None = None) -> None:
        """Drop the explicit alias `name@alias`; `production` then follows the newest version again."""
        check_name(name, param="name")
        check_alias(alias, param="alias")
        if alias in DERIVED_ALIASES:
            raise InvalidRequest(f"alias: {alias!r} is computed and cannot be removed", param="alias")
        previous = self._current(name, alias)
        self.store.remove_alias(name, alias)
        self.audit.audit(actor, "model.alias.remove", f"{name}@{alias}", {"previous": previous}, request_id)

    def _current(self, name: str, alias: str) -> str | None:
        """The version `alias` names now (`ModelNotFound` when the model does not exist)."""
        versions = self.store.repo.versions(name)
        if not versions:
            raise ModelNotFound(f"name: model {name!r} not found", param="name")
        for record in versions:
            if alias in record.aliases:
                return record.version
        return None
