"""`labelwise keys create | list | revoke`."""

from __future__ import annotations

from typing import Annotated

import typer

from labelwise.cli.context import Context
from labelwise.cli.output import console, err_console, print_json, print_table
from labelwise.services.keys import ALL_SCOPES, KeyInfo

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def key_dict(info: KeyInfo) -> dict[str, object]:
    return {
        "prefix": info.prefix,
        "name": info.name,
        "scopes": info.scopes,
        "active": info.active,
        "created_at": info.created_at.isoformat(timespec="seconds"),
        "revoked_at": info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else None,
        "last_used_at": info.last_used_at.isoformat(timespec="seconds") if info.last_used_at else None,
    }


@app.command()
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A name to recognise the key by.")] = "",
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help=f"Repeat for several: {', '.join(ALL_SCOPES)}.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key. The secret is shown once and never stored."""
    context: Context = ctx.obj
    key, info = context.keys.create(name, scope)
    if as_json:
        print_json({"key": key, **key_dict(info)})
        return
    console.print(key, highlight=False)
    err_console.print(f"scopes: {', '.join(info.scopes)}. Store it now: it cannot be shown again.")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List keys (prefixes only, never secrets)."""
    context: Context = ctx.obj
    infos = context.keys.list()
    if as_json:
        print_json([key_dict(i) for i in infos])
        return
    print_table(
        None,
        ["prefix", "name", "scopes", "active", "created", "last used"],
        [
            (
                i.prefix,
                i.name,
                ",".join(i.scopes),
                "yes" if i.active else "revoked",
                i.created_at.strftime("%Y-%m-%d %H:%M"),
                i.last_used_at.strftime("%Y-%m-%d %H:%M") if i.last_used_at else "",
            )
            for i in infos
        ],
    )


@app.command()
def revoke(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Argument(help="The key's prefix (or the whole key).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key; requests with it are refused within seconds."""
    context: Context = ctx.obj
    context.keys.revoke(prefix)
    if as_json:
        print_json({"prefix": prefix, "revoked": True})
    else:
        console.print(f"revoked {prefix}", highlight=False)
