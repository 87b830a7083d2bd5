"""`labelwise demo` (the set-up half of `make serve`) and `labelwise serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import console, err_console, print_json
from labelwise.services.demo import DEMO_MODEL, ensure_demo_key, ensure_demo_model


def demo(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Train the demo model `news` if it is missing and print a local API key."""
    context: Container = ctx.obj
    if not as_json:
        err_console.print(f"checking the demo model {DEMO_MODEL} ...")
    version, trained = ensure_demo_model(context.models, context.settings.data_dir)
    key = ensure_demo_key(context.keys, context.settings.data_dir)
    if as_json:
        print_json({"model": DEMO_MODEL, "version": version, "trained": trained, "key": key})
        return
    console.print(f"model {DEMO_MODEL} {version} {'trained' if trained else 'ready'}", highlight=False)
    console.print(f"API key: {key}", highlight=False)
    console.print(f"  export LABELWISE_API_KEY={key}", highlight=False)


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Worker processes (default: cores).")] = None,
) -> None:
    """Serve the HTTP API (uvicorn; one worker per core by default)."""
    from labelwise.api.server import serve as run_server

    context: Container = ctx.obj
    settings = context.settings
    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if updates:
        settings = settings.model_copy(update=updates)
    run_server(settings, workers=workers)
