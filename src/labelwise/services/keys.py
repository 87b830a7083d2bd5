"""API keys: creation (secret shown once), verification in constant time, listing and revocation.

A key looks like `lw_<prefix>_<secret>`. Only the prefix (public, used to find the row and shown in logs) and the
SHA-256 of the whole key are stored. Keys are 190 bits of randomness, so a fast hash is the right tool here; a
slow password hash would only slow every request.

Each key carries its settings: a rate limit (None: the server's default policy), a credit balance (None:
unlimited), an expiry and an enabled flag. An expired or disabled key fails verification exactly like an unknown
one. Every change is written to the append-only audit log with who made it and the request id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Final

from labelwise.errors import InvalidRequest, NotFound
from labelwise.rate_limit import canonical_rate_limit
from labelwise.storage.repositories import KeyRepository
from labelwise.storage.tables import ApiKeyRow


class Scope(StrEnum):
    CLASSIFY = "classify"
    TRAIN = "train"
    GENERATE = "generate"
    ADMIN = "admin"


ALL_SCOPES = [s.value for s in Scope]
KEY_PREFIX = "lw"
_PREFIX_LEN = 8
# A well-formed key we compare against when the prefix is unknown, so both paths cost the same.
_DUMMY_HASH = hashlib.sha256(b"labelwise-dummy-key").hexdigest()


_MAX_CREDITS = 2**62


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key: never the secret or its hash."""

    prefix: str
    name: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    rate_limit: str | None = None
    credits: int | None = None
    expires_at: datetime | None = None
    disabled: bool = False

    @property
    def status(self) -> str:
        """`active`, `revoked`, `disabled` or `expired` (the first that applies, in that order of finality)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.disabled:
            return "disabled"
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            return "expired"
        return "active"

    @property
    def active(self) -> bool:
        return self.status == "active"

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> KeyInfo:
        return cls(
            row.prefix,
            row.name,
            list(row.scopes),
            _aware(row.created_at) or row.created_at,
            _aware(row.revoked_at),
            _aware(row.last_used_at),
            rate_limit=row.rate_limit,
            credits=row.credits,
            expires_at=_aware(row.expires_at),
            disabled=bool(row.disabled),
        )


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request, with what the limit and billing checks need from its key."""

    prefix: str
    name: str
    scopes: frozenset[str]
    rate_limit: str | None = None
    metered: bool = False  # the key has a credit balance (else its use is unlimited)
    expires_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return Scope.ADMIN.value in self.scopes or scope in self.scopes


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """Settings to give a key; a field left UNSET stays as it is (at creation: takes the default).

    `rate_limit=None` means the server's default policy, `credits=None` unlimited, `expires_at=None` never.
    `add_credits` adds to (or, negative, takes from) the balance atomically; it excludes `credits`.
    """

    name: str | _Unset = UNSET
    scopes: list[str] | _Unset = UNSET
    rate_limit: str | _Unset | None = UNSET
    credits: int | _Unset | None = UNSET
    add_credits: int | _Unset = UNSET
    expires_at: datetime | _Unset | None = UNSET
    enabled: bool | _Unset = UNSET

    def columns(self) -> dict[str, Any]:
        """The checked `api_keys` column values these changes set (`add_credits` aside)."""
        if self.credits is not UNSET and self.add_credits is not UNSET:
            raise InvalidRequest("credits: give either credits or add_credits, not both", param="credits")
        out: dict[str, Any] = {}
        if self.name is not UNSET:
            out["name"] = check_name(self.name)
        if self.scopes is not UNSET:
            out["scopes"] = check_scopes(self.scopes)
        if self.rate_limit is not UNSET:
            out["rate_limit"] = None if self.rate_limit is None else canonical_rate_limit(self.rate_limit)
        if self.credits is not UNSET:
            out["credits"] = None if self.credits is None else check_credits(self.credits, "credits")
        if self.expires_at is not UNSET:
            out["expires_at"] = None if self.expires_at is None else check_expiry(self.expires_at)
        if self.enabled is not UNSET:
            out["disabled"] = not self.enabled
        return out


def check_name(name: str) -> str:
    if len(name) > 100:
        raise InvalidRequest(f"name: {len(name)} characters, the limit is 100", param="name")
    return name


def check_credits(value: int, param: str) -> int:
    if not 0 <= value <= _MAX_CREDITS:
        raise InvalidRequest(f"{param}: {value:,} is out of range; it must be 0 to {_MAX_CREDITS:,}", param=param)
    return value


def check_expiry(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if aware <= datetime.now(UTC):
        raise InvalidRequest(f"expires_at: {aware.isoformat()} is in the past", param="expires_at")
    return aware.astimezone(UTC)


def _audit_details(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


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
    """Creates, verifies, lists, changes and revokes API keys. `default_credits` is the balance of a key created
    without one (None: unlimited); the default rate limit is applied by the limiter, not stored."""

    def __init__(self, repo: KeyRepository, *, default_credits: int | None = None) -> None:
        self.repo = repo
        self.default_credits = default_credits

    def create(
        self,
        name: str = "",
        scopes: list[str] | None = None,
        *,
        settings: KeyChanges | None = None,
        actor: str = "cli",
        request_id: str | None = None,
    ) -> tuple[str, KeyInfo]:
        """A new key: returns the full secret (shown once, never stored) and its public info."""
        changes = settings or KeyChanges()
        if changes.add_credits is not UNSET:
            raise InvalidRequest("add_credits: a new key has no balance to add to; give credits", param="add_credits")
        given = KeyChanges(name=name, scopes=scopes or [Scope.CLASSIFY.value]).columns()
        values = {"credits": self.default_credits} | given | changes.columns()
        prefix = secrets.token_hex(_PREFIX_LEN // 2)
        key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(24)}"
        row = self.repo.add(prefix, hash_key(key), **values)
        self.repo.audit(actor, "key.create", prefix, _audit_details(values), request_id)
        return key, KeyInfo.from_row(row)

    def update(self, prefix: str, changes: KeyChanges, *, actor: str = "cli", request_id: str | None = None) -> KeyInfo:
        """Apply `changes` to an unrevoked key (by prefix or full key) and log them; `NotFound` if none."""
        prefix = split_key(prefix) or prefix
        values = changes.columns()
        details = _audit_details(values)
        if changes.add_credits is not UNSET:
            if self.get(prefix).revoked_at is not None:
                raise NotFound(f"no active key with prefix {prefix[:16]!r}", param="prefix")
            details["add_credits"] = changes.add_credits
            details["balance"] = self._add_credits(prefix, changes.add_credits)
        row = self.repo.update(prefix, values)
        if row is None:
            raise NotFound(f"no active key with prefix {prefix[:16]!r}", param="prefix")
        self.repo.audit(actor, "key.update", prefix, details, request_id)
        return KeyInfo.from_row(row)

    def _add_credits(self, prefix: str, amount: int) -> int:
        """Add to the balance in one atomic UPDATE; the new balance."""
        if amount == 0 or abs(amount) > _MAX_CREDITS:
            raise InvalidRequest(f"add_credits: {amount:,}; give a non-zero amount", param="add_credits")
        balance = self.repo.add_credits(prefix, amount)
        if balance is not None:
            return balance
        info = self.get(prefix)
        if info.credits is None:
            raise InvalidRequest(
                "add_credits: this key has unlimited credits; set a balance first", param="add_credits"
            )
        raise InvalidRequest(
            f"add_credits: {amount:,} would leave a negative balance (it is {info.credits:,})", param="add_credits"
        )

    def get(self, prefix: str) -> KeyInfo:
        """One key by prefix (or full key), revoked or not; `NotFound` if there is none."""
        prefix = split_key(prefix) or prefix
        row = self.repo.by_prefix(prefix)
        if row is None:
            raise NotFound(f"no key with prefix {prefix[:16]!r}", param="prefix")
        return KeyInfo.from_row(row)

    def verify(self, key: str) -> Principal | None:
        """The principal for a valid, usable key; None otherwise (unknown, wrong secret, revoked, disabled,
        expired). Takes the same time whatever is wrong."""
        prefix = split_key(key)
        row = self.repo.by_prefix(prefix) if prefix is not None else None
        expected = row.secret_hash if row is not None else _DUMMY_HASH
        matches = hmac.compare_digest(hash_key(key), expected)
        if row is None or not matches:
            return None
        info = KeyInfo.from_row(row)
        if not info.active:
            return None
        return Principal(
            row.prefix,
            row.name,
            frozenset(row.scopes),
            rate_limit=row.rate_limit,
            metered=row.credits is not None,
            expires_at=info.expires_at,
        )

    def list(self) -> list[KeyInfo]:
        return [KeyInfo.from_row(row) for row in self.repo.all()]

    def revoke(self, prefix: str, *, actor: str = "cli", request_id: str | None = None) -> KeyInfo:
        """Revoke a key by its prefix (or the full key); `NotFound` if no active key has it."""
        prefix = split_key(prefix) or prefix
        if not self.repo.revoke(prefix):
            raise NotFound(f"no active key with prefix {prefix[:16]!r}", param="prefix")
        self.repo.audit(actor, "key.revoke", prefix, request_id=request_id)
        return self.get(prefix)

    def ensure_admin_key(self) -> str | None:
        """Create an admin key when no active key exists (first start); returns its secret, else None."""
        if any(info.active for info in self.list()):
            return None
        key, _ = self.create("bootstrap", [Scope.ADMIN.value], actor="bootstrap")
        return key
