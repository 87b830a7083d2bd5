"""API keys: creation (secret shown once), verification in constant time, listing and revocation.

A key looks like `lw_<prefix>_<secret>`. Only the prefix (public, used to find the row and shown in logs) and the
SHA-256 of the whole key are stored. Keys are 190 bits of randomness, so a fast hash is the right tool here; a
slow password hash would only slow every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from labelwise.errors import InvalidRequest, NotFound
from labelwise.storage.repositories import KeyRepository
from labelwise.storage.tables import ApiKeyRow


class Scope(StrEnum):
    CLASSIFY = "classify"
    TRAIN = "train"
    ADMIN = "admin"


ALL_SCOPES = [s.value for s in Scope]
KEY_PREFIX = "lw"
_PREFIX_LEN = 8
# A well-formed key we compare against when the prefix is unknown, so both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"labelwise-dummy-key").hexdigest()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the secret or its hash."""

    prefix: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> KeyInfo:
        return cls(row.prefix, row.name, list(row.scopes), row.created_at, row.revoked_at, row.last_used_at)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request."""

    prefix: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return Scope.ADMIN.value in self.scopes or scope in self.scopes


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def split_key(key: str) -> str | None:
    """The public prefix of a well-formed key, or None."""
    parts = key.split("_", 2)  # the secret itself may contain "_" (URL-safe base64)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != _PREFIX_LEN or not parts[2]:
        return None
    return parts[1]


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown or not scopes:
        raise InvalidRequest(
            f"scopes: {', '.join(unknown) or 'none given'}; choose from {', '.join(ALL_SCOPES)}", param="scopes"
        )
    return sorted(set(scopes))


class KeyService:
    """Creates, verifies, lists and revokes API keys."""

    def __init__(self, repo: KeyRepository) -> None:
        self.repo = repo

    def create(self, name: str = "", scopes: list[str] | None = None, *, actor: str = "cli") -> tuple[str, KeyInfo]:
        """A new key: returns the full secret (shown once, never stored) and its public info."""
        if len(name) > 100:
            raise InvalidRequest(f"name: {len(name)} characters, the limit is 100", param="name")
        chosen = check_scopes(scopes or [Scope.CLASSIFY.value])
        prefix = secrets.token_hex(_PREFIX_LEN // 2)
        key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
        row = self.repo.add(prefix, hash_key(key), name, chosen)
        self.repo.audit(actor, "key.create", prefix, {"name": name, "scopes": chosen})
        return key, KeyInfo.from_row(row)

    def verify(self, key: str) -> Principal | None:
        """The principal for a valid, active key; None otherwise. Takes the same time whatever is wrong."""
        prefix = split_key(key)
        row = self.repo.by_prefix(prefix) if prefix is not None else None
        expected = row.secret_hash if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(hash_key(key), expected)
        if row is None or not matches or row.revoked_at is not None:
            return None
        return Principal(row.prefix, row.name, frozenset(row.scopes))

    def list(self) -> list[KeyInfo]:
        return [KeyInfo.from_row(row) for row in self.repo.all()]

    def revoke(self, prefix: str, *, actor: str = "cli") -> None:
        """Revoke a key by its prefix (or the full key); `NotFound` if no active key has it."""
        prefix = split_key(prefix) or prefix
        if not self.repo.revoke(prefix):
            raise NotFound(f"no active key with prefix {prefix[:16]!r}", param="prefix")
        self.repo.audit(actor, "key.revoke", prefix)

    def ensure_admin_key(self) -> str | None:
        """Create an admin key when no active key exists (first start); returns its secret, else None."""
        if any(info.active for info in self.list()):
            return None
        key, _ = self.create("bootstrap", [Scope.ADMIN.value], actor="bootstrap")
        return key
