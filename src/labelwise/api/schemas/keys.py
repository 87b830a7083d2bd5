"""Bodies of the key administration API (`/v1/keys`): create, update, and the public view of a key."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labelwise.services.keys import UNSET, KeyChanges, KeyInfo

RATE_LIMIT_DOC = "e.g. `20/second; 1000/minute`, or `unlimited`; null: the server's default policy"


class KeyCreate(BaseModel):
    """A new key. Settings left out take the server's defaults (`default_rate_limit`, `default_credits`)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=100, description="A name to recognise the key by.")
    scopes: list[str] = Field(default_factory=lambda: ["classify"], min_length=1, description="classify, train, admin")
    rate_limit: str | None = Field(default=None, max_length=200, description=RATE_LIMIT_DOC)
    credits: int | None = Field(default=None, ge=0, description="Credit balance; null: unlimited.")
    expires_at: datetime | None = Field(default=None, description="When the key stops working; null: never.")
    enabled: bool = True

    def changes(self) -> KeyChanges:
        """The settings given, as the key service takes them (a field not sent takes its default)."""
        sent = self.model_fields_set
        return KeyChanges(
            rate_limit=self.rate_limit if "rate_limit" in sent else UNSET,
            credits=self.credits if "credits" in sent else UNSET,
            expires_at=self.expires_at if "expires_at" in sent else UNSET,
            enabled=self.enabled if "enabled" in sent else UNSET,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What defines the request, for `Idempotency-Key`: bodies that create the same key match."""
        sent = self.model_fields_set
        return {
            "kind": "key",
            "name": self.name,
            "scopes": sorted(set(self.scopes)),
            "rate_limit": self.rate_limit,
            # Left out, a key takes the server's default balance; null means unlimited.
            "credits": self.credits if "credits" in sent else "default",
            "expires_at": self.expires_at.isoformat() if self.expires_at is not None else None,
            "enabled": self.enabled,
        }


class KeyUpdate(BaseModel):
    """Changes to a key: only the fields sent change. `credits` sets the balance, `add_credits` adds to it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=100)
    scopes: list[str] = Field(default_factory=list, min_length=1)
    rate_limit: str | None = Field(default=None, max_length=200, description=RATE_LIMIT_DOC)
    credits: int | None = Field(default=None, ge=0, description="New balance; null: unlimited.")
    add_credits: int = Field(default=0, description="Added to the balance atomically (negative: taken).")
    expires_at: datetime | None = Field(default=None, description="null: never.")
    enabled: bool = True

    def changes(self) -> KeyChanges:
        sent = self.model_fields_set
        return KeyChanges(
            name=self.name if "name" in sent else UNSET,
            scopes=self.scopes if "scopes" in sent else UNSET,
            rate_limit=self.rate_limit if "rate_limit" in sent else UNSET,
            credits=self.credits if "credits" in sent else UNSET,
            add_credits=self.add_credits if "add_credits" in sent else UNSET,
            expires_at=self.expires_at if "expires_at" in sent else UNSET,
            enabled=self.enabled if "enabled" in sent else UNSET,
        )


class KeyPublic(BaseModel):
    """What may be shown about a key: never its secret or hash."""

    prefix: str = Field(description="The public part of the key; names it in logs, usage and this API.")
    name: str
    scopes: list[str]
    status: Literal["active", "revoked", "disabled", "expired"]
    rate_limit: str | None = Field(description="The key's own limit; null: the server's default policy.")
    credits: int | None = Field(description="Credit balance; null: unlimited.")
    expires_at: datetime | None
    enabled: bool
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, info: KeyInfo) -> KeyPublic:
        return cls(
            prefix=info.prefix,
            name=info.name,
            scopes=info.scopes,
            status=info.status,
            rate_limit=info.rate_limit,
            credits=info.credits,
            expires_at=info.expires_at,
            enabled=not info.disabled,
            created_at=info.created_at,
            revoked_at=info.revoked_at,
            last_used_at=info.last_used_at,
        )


class KeyCreated(KeyPublic):
    """A new key, with its secret: shown this once, never stored."""

    key: str | None = Field(
        description="The full key. Store it now: it cannot be shown again. Null when `replayed`: the secret was in "
        "the first answer only."
    )
    replayed: bool = Field(
        default=False,
        description="True when this repeats the first answer to a request with the same `Idempotency-Key`: the key "
        "it names (`prefix`) was created then, and its secret is not shown again.",
    )


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyPublic]
