"""`labelwise review export|import`: the review queue's round trip through a Label Studio project."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import console, print_json

app = typer.Typer(help="Send the review queue to Label Studio and bring the annotations back.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
Model = Annotated[str, typer.Argument(help="Model name.")]
Url = Annotated[
    str | None,
    typer.Option("--label-studio", help="Label Studio's URL (default LABELWISE_LABEL_STUDIO_URL); the token is "
                 "read from LABELWISE_LABEL_STUDIO_TOKEN."),
]  # fmt: skip
Project = Annotated[int, typer.Option("--project", min=1, help="The Label Studio project's id.")]


@app.command("export")
def export(
    ctx: typer.Context,
    model: Model,
    project: Project,
    url: Url = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="Most texts to send.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Send MODEL's review queue (abstained predictions first, then the least confident) to a Label Studio
    project as tasks, with our predictions as pre-annotations."""
    context: Container = ctx.obj
    result = asyncio.run(context.label_studio.export(model, project, limit=limit, url=url))
    if as_json:
        print_json(asdict(result))
        return
    console.print(
        f"sent {result.sent} tasks ({result.abstained} abstained) to project {result.project}; "
        f"{result.already_there} already there",
        highlight=False,
    )


@app.command("import")
def import_(ctx: typer.Context, model: Model, project: Project, url: Url = None, as_json: JsonOpt = False) -> None:
    """Store the finished annotations of a Label Studio project as feedback for MODEL (labels mapped to its own);
    `labelwise train --name MODEL --with-feedback` then trains on them."""
    context: Container = ctx.obj
    result = asyncio.run(context.label_studio.import_annotations(model, project, url=url))
    if as_json:
        print_json(asdict(result))
        return
    console.print(
        f"imported {result.imported} annotations as feedback for {model}; {result.unannotated} tasks not annotated",
        highlight=False,
    )
    for label, count in result.unknown_labels.items():
        console.print(
            f"[yellow]skipped:[/yellow] {count} tasks chose {label!r}, not a label of {model}", highlight=False
        )
