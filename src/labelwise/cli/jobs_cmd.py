"""`labelwise jobs`: submit, follow, fetch and cancel batch jobs on a Labelwise server, over HTTP (httpx).

The server comes from `--server` (default http://127.0.0.1:8000) and the key from `--key` or
`LABELWISE_API_KEY`. An error answer is printed as its message, one line, and the command exits 1.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from labelwise.cli.output import err_console, fail, print_json, print_table

app = typer.Typer(help="Batch jobs on a server: submit a file, follow it, fetch the results.", no_args_is_help=True)

Server = Annotated[str, typer.Option("--server", envvar="LABELWISE_SERVER", help="The server's base URL.")]
Key = Annotated[str | None, typer.Option("--key", envvar="LABELWISE_API_KEY", help="API key (or LABELWISE_API_KEY).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
DEFAULT_SERVER = "http://127.0.0.1:8000"
_ENDED = ("succeeded", "failed", "cancelled")


def _client(server: str, key: str | None) -> httpx.Client:
    if not key:
        fail("an API key is needed: --key KEY or LABELWISE_API_KEY", code=2)
    return httpx.Client(base_url=server.rstrip("/"), headers={"x-api-key": str(key)}, timeout=300.0)


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        fail(f"{response.status_code}: {message}")
    return response.json()


def _show(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(job)
        return
    fields = ("id", "kind", "state", "model", "rows_done", "rows_total", "rate", "eta_seconds", "credits", "error")
    print_table(f"job {job['id']}", ["field", "value"], [(name, job.get(name)) for name in fields])


def _wait(client: httpx.Client, job: dict[str, Any], *, show_bar: bool, poll: float = 0.5) -> dict[str, Any]:
    """Poll until the job ends, with a Rich bar on stderr unless `show_bar` is off."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not show_bar,
    ) as bar:
        task = bar.add_task(job["id"], total=job["rows_total"])
        while job["state"] not in _ENDED:
            time.sleep(poll)  # a client polling a server: the pause is the point, not a test wait
            job = _checked(client.get(f"/v1/jobs/{job['id']}"))
            bar.update(task, completed=job["rows_done"], description=f"{job['id']} {job['state']}")
    return job


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSON lines or Parquet.")],
    model: Annotated[
        str | None, typer.Option("--model", help="classify: model, model@version or model@alias (required)")
    ] = None,
    kind: Annotated[str, typer.Option("--kind", help="classify (a label per row) or embed (a vector per row)")] = (
        "classify"
    ),
    text_col: Annotated[str, typer.Option("--text-col")] = "text",
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=20, help="classify only")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    server: Server = DEFAULT_SERVER,
    key: Key = None,
    as_json: JsonOpt = False,
) -> None:
    """Upload FILE and queue a job classifying (or, with --kind embed, embedding) every row."""
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    fields = {"kind": kind, "model": model, "text_col": text_col, "top_k": None if top_k is None else str(top_k)}
    data = {name: value for name, value in fields.items() if value is not None}
    with _client(server, key) as client, file.open("rb") as fh:
        job = _checked(client.post("/v1/jobs", files={"file": (file.name, fh)}, data=data, headers=headers))
        if wait:
            job = _wait(client, job, show_bar=not as_json)
    _show(job, as_json)
    if job["state"] == "failed":
        raise SystemExit(1)


@app.command()
def status(
    job_id: Annotated[str, typer.Argument()],
    server: Server = DEFAULT_SERVER,
    key: Key = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's state and progress."""
    with _client(server, key) as client:
        _show(_checked(client.get(f"/v1/jobs/{job_id}")), as_json)


@app.command("list")
def list_jobs(server: Server = DEFAULT_SERVER, key: Key = None, as_json: JsonOpt = False) -> None:
    """This key's jobs, newest first."""
    with _client(server, key) as client:
        jobs = _checked(client.get("/v1/jobs"))["data"]
    if as_json:
        print_json(jobs)
        return
    rows = [(j["id"], j["kind"], j["state"], f"{j['rows_done']}/{j['rows_total']}", j["created_at"]) for j in jobs]
    print_table("jobs", ["id", "kind", "state", "rows", "created"], rows)


@app.command()
def results(
    job_id: Annotated[str, typer.Argument()],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the results file.")],
    server: Server = DEFAULT_SERVER,
    key: Key = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a succeeded job's results (the input rows with label and score, or with their vectors) to --output."""
    written = 0
    partial = output.with_name(f".{output.name}.partial")
    with _client(server, key) as client, client.stream("GET", f"/v1/jobs/{job_id}/results") as response:
        if response.status_code >= 400:
            response.read()
            _checked(response)
        with partial.open("wb") as fh:
            for block in response.iter_bytes():
                fh.write(block)
                written += len(block)
    partial.replace(output)
    if as_json:
        print_json({"id": job_id, "output": str(output), "bytes": written})
    else:
        typer.echo(f"wrote {output} ({written:,} bytes)")


@app.command()
def cancel(
    job_id: Annotated[str, typer.Argument()],
    server: Server = DEFAULT_SERVER,
    key: Key = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running job."""
    with _client(server, key) as client:
        _show(_checked(client.delete(f"/v1/jobs/{job_id}")), as_json)
