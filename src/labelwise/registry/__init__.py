"""The model store: named models, semantic versions, aliases and checksummed artifacts."""

from labelwise.registry.store import ModelStore, parse_ref

__all__ = ["ModelStore", "parse_ref"]
