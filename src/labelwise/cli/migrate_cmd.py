"""`labelwise migrate`: bring the database schema to the newest revision and exit.

Servers and workers migrate at start too (under an advisory lock on PostgreSQL); a deployment runs this once per
release (the Kubernetes Job in deploy/kubernetes/migrate-job.yaml) so a rollout does not wait on it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import print_json


def migrate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Migrate the database to the newest schema (idempotent)."""
    context: Container = ctx.obj
    db = context.db  # the CLI's container migrates the database when it first opens it
    at_heads = db.at_heads()
    if as_json:
        print_json({"migrated": at_heads})
    else:
        typer.echo("database schema is up to date" if at_heads else "database schema is not at the newest revision")
    if not at_heads:
        raise typer.Exit(1)
