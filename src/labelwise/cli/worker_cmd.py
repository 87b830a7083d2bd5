"""`labelwise worker`: process batch jobs beside the servers, on this machine or any other sharing the database
and the data directory. Stop it with Ctrl-C or SIGTERM: it finishes the chunk in hand first."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Annotated

import typer

from labelwise.bootstrap import Container
from labelwise.cli.output import print_json
from labelwise.services.job_worker import JobWorker
from labelwise.storage.jobs_repository import ClaimedChunk

# Fault injection for the crash tests: SIGKILL this process right after its N-th chunk file is written (or training
# job's version is published), before the commit that records it. Never set in production.
KILL_AFTER_WRITES_ENV = "LABELWISE_WORKER_KILL_AFTER_WRITES"


def _kill_hook() -> Callable[[ClaimedChunk], None] | None:
    raw = os.environ.get(KILL_AFTER_WRITES_ENV)
    if not raw:
        return None
    remaining = int(raw)

    def after_write(_chunk: ClaimedChunk) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining <= 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return after_write


def worker(
    ctx: typer.Context,
    poll: Annotated[float | None, typer.Option("--poll", min=0.01, help="Seconds between looks for work.")] = None,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit once no work is left.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout at exit.")] = False,
) -> None:
    """Run a job worker until stopped (or, with --until-idle, until no job has work left)."""
    context: Container = ctx.obj
    service = context.jobs
    runner = JobWorker(service, poll_seconds=poll or context.settings.worker_poll_seconds, after_write=_kill_hook())
    if until_idle:
        while runner.run_once():
            pass
    else:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: runner.stop(timeout=0))
        runner.run()
    summary = {"worker": runner.name, "chunks": runner.chunks_done}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"worker {runner.name}: {runner.chunks_done} chunks")
