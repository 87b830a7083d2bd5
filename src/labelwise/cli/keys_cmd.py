"""`labelwise keys create | list | update | revoke`."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import console, err_console, print_json, print_table
from labelwise.services.keys import ALL_SCOPES, UNSET, KeyChanges, KeyInfo

app = typer.Typer(help="Create, list, change and revoke API keys.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ScopeOpt = Annotated[list[str] | None, typer.Option("--scope", help=f"Repeat for several: {', '.join(ALL_SCOPES)}.")]
RateLimitOpt = Annotated[
    str | None,
    typer.Option("--rate-limit", help="e.g. '20/second; 1000/minute', 'unlimited', or 'default' (the server's)."),
]
CreditsOpt = Annotated[str | None, typer.Option("--credits", help="Set the balance: a number, or 'unlimited'.")]
ExpiresOpt = Annotated[
    str | None, typer.Option("--expires", help="ISO date or time (UTC unless given), a span like 30d or 12h, or never.")
]
EnabledOpt = Annotated[
    bool | None, typer.Option("--enable/--disable", help="A disabled key fails auth like an unknown one.")
]

_SPAN = re.compile(r"(\d+)([mhdw])")
_SPAN_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def key_dict(info: KeyInfo) -> dict[str, object]:
    return {
        "prefix": info.prefix,
        "name": info.name,
        "scopes": info.scopes,
        "active": info.active,
        "status": info.status,
        "rate_limit": info.rate_limit,
        "credits": info.credits,
        "expires_at": info.expires_at.isoformat(timespec="seconds") if info.expires_at else None,
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "revoked_at": info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else None,
        "last_used_at": info.last_used_at.isoformat(timespec="seconds") if info.last_used_at else None,
    }


def parse_credits(value: str) -> int | None:
    """`--credits`: a non-negative whole number, or `unlimited` (None)."""
    if value.strip().lower() == "unlimited":
        return None
    try:
        return int(value.replace(",", "").replace("_", ""))
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give a whole number or 'unlimited'", param_hint="--credits") from None


def parse_expiry(value: str, now: datetime | None = None) -> datetime | None:
    """`--expires`: an ISO date or datetime (UTC unless it says), a span from now (`30d`, `12h`), or `never`."""
    text = value.strip().lower()
    if text == "never":
        return None
    span = _SPAN.fullmatch(text)
    if span is not None:
        return (now or datetime.now(UTC)) + timedelta(**{_SPAN_UNITS[span.group(2)]: int(span.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give an ISO date or time (2027-01-31), a span (30d, 12h) or 'never'", param_hint="--expires"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def settings_from_options(
    rate_limit: str | None, credits: str | None, expires: str | None, enabled: bool | None
) -> KeyChanges:
    """The key settings the options give; an option left out changes nothing."""
    return KeyChanges(
        rate_limit=UNSET if rate_limit is None else (None if rate_limit.strip().lower() == "default" else rate_limit),
        credits=UNSET if credits is None else parse_credits(credits),
        expires_at=UNSET if expires is None else parse_expiry(expires),
        enabled=UNSET if enabled is None else enabled,
    )


def _print_key(info: KeyInfo) -> None:
    balance = "unlimited" if info.credits is None else f"{info.credits:,}"
    expires = info.expires_at.isoformat(timespec="seconds") if info.expires_at else "never"
    err_console.print(
        f"{info.prefix} ({info.status}): scopes {', '.join(info.scopes)}; rate limit {info.rate_limit or 'default'};"
        f" credits {balance}; expires {expires}",
        highlight=False,
    )


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A name to recognise the key by.")] = "",
    scope: ScopeOpt = None,
    rate_limit: RateLimitOpt = None,
    credits: CreditsOpt = None,
    expires: ExpiresOpt = None,
    enabled: EnabledOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key. The secret is shown once and never stored. Settings left out take the server's defaults."""
    context: Container = ctx.obj
    changes = settings_from_options(rate_limit, credits, expires, enabled)
    key, info = context.keys.create(name, scope, settings=changes)
    if as_json:
        print_json({"key": key, **key_dict(info)})
        return
    console.print(key, highlight=False)
    _print_key(info)
    err_console.print("Store it now: it cannot be shown again.")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List keys (prefixes only, never secrets)."""
    context: Container = ctx.obj
    infos = context.keys.list()
    if as_json:
        print_json([key_dict(i) for i in infos])
        return
    print_table(
        None,
        ["prefix", "name", "scopes", "status", "rate limit", "credits", "expires", "created", "last used"],
        [
            (
                i.prefix,
                i.name,
                ",".join(i.scopes),
                i.status,
                i.rate_limit or "default",
                "unlimited" if i.credits is None else f"{i.credits:,}",
                i.expires_at.strftime("%Y-%m-%d %H:%M") if i.expires_at else "",
                i.created_at.strftime("%Y-%m-%d %H:%M"),
                i.last_used_at.strftime("%Y-%m-%d %H:%M") if i.last_used_at else "",
            )
            for i in infos
        ],
    )


@app.command()
def update(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The key's prefix (or the whole key).")],
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    scope: ScopeOpt = None,
    rate_limit: RateLimitOpt = None,
    credits: CreditsOpt = None,
    add_credits: Annotated[
        int | None, typer.Option("--add-credits", help="Add to the balance (negative: take); not with --credits.")
    ] = None,
    expires: ExpiresOpt = None,
    enabled: EnabledOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a key's settings; options left out stay as they are. Running servers see it within seconds."""
    context: Container = ctx.obj
    if credits is not None and add_credits is not None:
        raise typer.BadParameter("give either --credits or --add-credits", param_hint="--add-credits")
    changes = replace(
        settings_from_options(rate_limit, credits, expires, enabled),
        name=UNSET if name is None else name,
        scopes=scope if scope else UNSET,
        add_credits=UNSET if add_credits is None else add_credits,
    )
    info = context.keys.update(prefix, changes)
    if as_json:
        print_json(key_dict(info))
    else:
        _print_key(info)


@app.command()
def revoke(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The key's prefix (or the whole key).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key; requests with it are refused within seconds."""
    context: Container = ctx.obj
    context.keys.revoke(prefix)
    if as_json:
        print_json({"prefix": prefix, "revoked": True})
    else:
        console.print(f"revoked {prefix}", highlight=False)
