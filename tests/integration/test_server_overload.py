"""A real `labelwise serve` (its default two workers): the encoder's threads run at a lower OS priority than each
worker's event loop, so a loop that has a refusal to send gets a core while the encoder keeps every core busy.

How fast refusals then are is measured, not asserted: bench/overload.py."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from tests.api.serving_fakes import Fixture, make_settings
from tests.integration.real_server import labelwise_serve

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread priorities from /proc")


def nice_by_thread(pid: int) -> dict[int, int]:
    """Thread id -> nice value, for every thread of process `pid`."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


def workers_of(pid: int) -> list[int]:
    """The server's worker processes: its children that run more than one thread."""
    children = (Path(f"/proc/{pid}/task/{pid}/children")).read_text().split()
    return [int(child) for child in children if len(list(Path(f"/proc/{child}/task").iterdir())) > 1]


def test_encoder_threads_run_below_the_event_loop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    fixture = Fixture(make_settings(data, f"sqlite:///{data / 'labelwise.db'}"))
    key = fixture.key("classify")
    fixture.close()
    env = {"LABELWISE_DATA_DIR": str(data), "LABELWISE_LOG_LEVEL": "WARNING"}
    if "LABELWISE_ENCODER_DIR" in os.environ:
        env["LABELWISE_ENCODER_DIR"] = os.environ["LABELWISE_ENCODER_DIR"]
    loop_nice = os.nice(0)  # the server inherits this process's nice value (the suite may itself run niced)
    lowered_nice = min(loop_nice + 10, 19)
    with labelwise_serve(env) as running:
        process, base = running.process, running.base
        workers = workers_of(process.pid)
        assert workers, "no worker processes found"
        lowered: dict[int, set[int]] = {}
        deadline = time.monotonic() + 120
        # New connections until every worker has run zero-shot work (the kernel spreads connections over them).
        while len(lowered) < len(workers):
            assert time.monotonic() < deadline, f"only workers {sorted(lowered)} of {workers} ran encoder work"
            with httpx.Client(base_url=base, headers={"x-api-key": key}, timeout=60) as client:
                body = {"texts": ["the striker scored twice", "rates rose again"], "labels": ["sports", "finance"]}
                assert client.post("/v1/batch", json=body).status_code == 200
            for worker in workers:
                niced = {tid for tid, nice in nice_by_thread(worker).items() if nice == lowered_nice}
                if niced:
                    lowered[worker] = niced
        for worker in workers:
            threads = nice_by_thread(worker)
            assert threads[worker] == loop_nice  # the main thread runs the event loop
            # the batcher's thread, the tokenizer's and one inference thread per core, at least
            assert len(lowered[worker]) >= 3, threads
