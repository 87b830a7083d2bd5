"""`labelwise models list | show | delete | alias`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import console, fail, print_json, print_table
from labelwise.data import ReadOptions
from labelwise.domain import ModelVersion
from labelwise.registry.store import parse_ref

app = typer.Typer(help="List, inspect, delete and alias stored models.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def version_dict(record: ModelVersion) -> dict[str, Any]:
    """A version as shown by `models show --json`."""
    return {
        "name": record.name,
        "version": record.version,
        "engine": record.engine,
        "task": record.task.value,
        "labels": record.labels,
        "aliases": record.aliases,
        "created_at": record.created_at.isoformat(timespec="seconds"),
        "metrics": record.metrics,
        "thresholds": record.thresholds,
        "params": record.params,
        "data": record.data,
        "sha256": record.sha256,
    }


def _metric(record: ModelVersion) -> str:
    head = record.metrics.get("headline", {})
    for key in ("accuracy", "micro_f1"):
        if key in head:
            return f"{key} {head[key]:.4f}"
    return ""


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List models with their newest version, aliases and headline metric."""
    context: Container = ctx.obj
    models = context.store.all()
    if as_json:
        print_json(
            [
                {"name": name, "versions": [v.version for v in versions], "latest": version_dict(versions[0])}
                for name, versions in models.items()
            ]
        )
        return
    if not models:
        console.print("no models yet: train one with `labelwise train DATA --name NAME`")
        return
    print_table(
        None,
        ["model", "versions", "latest", "engine", "labels", "aliases", "metric"],
        [
            (name, len(v), v[0].version, v[0].engine, len(v[0].labels), _aliases(v), _metric(v[0]))
            for name, v in models.items()
        ],
    )


def _aliases(versions: list[ModelVersion]) -> str:
    return " ".join(f"{alias}->{v.version}" for v in versions for alias in v.aliases)


@app.command()
def show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="name, name@alias or name:version")],
    as_json: JsonOpt = False,
) -> None:
    """Show a model's versions, or one version's details."""
    context: Container = ctx.obj
    ref = parse_ref(model)
    versions = (
        [context.store.resolve(model)]
        if ref.version is not None or ref.alias is not None
        else context.store.versions(ref.name)
    )
    if as_json:
        print_json({"name": ref.name, "versions": [version_dict(v) for v in versions]})
        return
    print_table(
        ref.name,
        ["version", "engine", "task", "labels", "aliases", "created", "metric"],
        [
            (
                v.version,
                v.engine,
                v.task.value,
                len(v.labels),
                " ".join(v.aliases),
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                _metric(v),
            )
            for v in versions
        ],
    )
    newest = versions[0]
    console.print(f"labels ({len(newest.labels)}): {', '.join(newest.labels)}", highlight=False)
    console.print(f"report: {context.models.report_path(newest) / 'report.html'}", highlight=False)


@app.command()
def delete(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="name (all versions) or name:version")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete one version, or a whole model with all its versions."""
    context: Container = ctx.obj
    ref = parse_ref(model)
    if ref.alias is not None:
        fail("delete takes name or name:version, not an alias", code=2)
    if not yes and not typer.confirm(f"delete {model}?", err=True):
        fail("aborted")
    removed = context.store.delete(ref.name, ref.version)
    if as_json:
        print_json({"deleted": [v.ref for v in removed]})
    else:
        console.print(f"deleted {', '.join(v.ref for v in removed)}", highlight=False)


@app.command()
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. production or canary.")],
    version: Annotated[str | None, typer.Argument(help="Version the alias points at.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version (or remove it with --remove)."""
    context: Container = ctx.obj
    if remove:
        context.store.remove_alias(name, alias_name)
        result: dict[str, Any] = {"name": name, "alias": alias_name, "removed": True}
    else:
        if version is None:
            fail("VERSION is required unless --remove is given", code=2)
        assert version is not None
        record = context.store.set_alias(name, alias_name, version)
        result = {"name": name, "alias": alias_name, "version": record.version}
    if as_json:
        print_json(result)
    else:
        console.print(
            f"{name}@{alias_name} removed" if remove else f"{name}@{alias_name} -> {result['version']}",
            highlight=False,
        )


@app.command("import")
def import_(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="A Hugging Face sequence-classification directory.")],
    name: Annotated[str, typer.Option("--name", help="Model name.")],
    validation: Annotated[
        Path | None, typer.Option("--validation", help="Labeled file: calibrate on it and report its metrics.")
    ] = None,
    text_col: Annotated[str, typer.Option("--text-col", help="Text column of the validation file.")] = "text",
    label_col: Annotated[str | None, typer.Option("--label-col", help="Label column (default: detect).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a fine-tuned Hugging Face classifier (config.json with id2label, model.safetensors,
    tokenizer.json) as a new version, converted to int8 ONNX; labels keep the id2label order."""
    context: Container = ctx.obj
    options = ReadOptions(text_col=text_col, label_col=label_col)
    record, report = context.models.import_model(directory, name, validation=validation, options=options)
    summary = {
        "model": record.name,
        "version": record.version,
        "engine": record.engine,
        "task": record.task.value,
        "labels": record.labels,
        "metrics": record.metrics.get("headline", {}),
    }
    if as_json:
        print_json(summary)
        return
    print_table(
        f"{record.name} {record.version} (imported, {record.task.value}, {len(record.labels)} labels)",
        ["metric", "value"],
        [("labels", ", ".join(record.labels)), *summary["metrics"].items()],
    )
    if report.get("validation") is not None:
        console.print(f"report: {context.models.report_path(record) / 'report.html'}", highlight=False)
