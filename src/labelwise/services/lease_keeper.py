"""The lease keeper: a small process that renews one chunk's lease while the worker holding it trains a model.

Why a process: a worker renews its lease from a thread (`job_worker._LeaseRenewer`), and a thread runs only when it
gets the interpreter lock. Training holds that lock for seconds at a time inside C code that never lets it go:
importing PyTorch, ONNX and matplotlib, building and checking the int8 graph, opening ONNX Runtime sessions.
Watched with faulthandler on the loaded 2-core machine, the renewing thread was held off for 1 to 3 seconds at a
time, and with a lease shorter than such a stall another worker took the training over (and then a third, until
the job failed after its attempts). A separate interpreter is never held off by the trainer.

Protocol: the worker starts `python -m labelwise.services.lease_keeper`, writes one JSON line to its stdin
(`database_url`, `job_id`, `seq`, `owner`, `lease_seconds`) and keeps stdin open. The keeper renews at once, says
so on stdout (the worker waits for that line before it starts training, while its own thread still renews), and
then renews every third of the lease until stdin closes: the worker closes it when the chunk is done, and the
kernel closes it when the worker dies, even by SIGKILL, so a dead worker's lease still expires and its job is
taken over. The keeper also stops once a renewal finds the lease lost.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
from typing import Any

from labelwise.storage.db import Database
from labelwise.storage.jobs_repository import JobRepository

logger = logging.getLogger(__name__)


def keep(order: dict[str, Any], stdin_fd: int = 0, ready_fd: int = 1) -> None:
    """Renew the lease `order` describes until `stdin_fd` reaches end of file or the lease is lost; write a line to
    `ready_fd` after the first renewal."""
    repo = JobRepository(Database(str(order["database_url"])))
    seconds = float(order["lease_seconds"])
    job_id, seq, owner = str(order["job_id"]), int(order["seq"]), str(order["owner"])
    started = False
    try:
        while True:
            try:
                if not repo.renew(job_id, seq, owner, seconds):
                    return  # lost: the worker's commit will find out and record nothing
            except Exception:
                logger.warning("lease renewal failed", exc_info=True, extra={"job": job_id})
            if not started:
                started = True
                os.write(ready_fd, b"renewing\n")  # the worker waits for this before it starts training
            ready, _, _ = select.select([stdin_fd], [], [], seconds / 3)
            if ready and not os.read(stdin_fd, 4096):
                return  # the worker finished the chunk, or died
    finally:
        repo.db.engine.dispose()


def main() -> None:
    keep(json.loads(sys.stdin.buffer.readline()))


if __name__ == "__main__":
    main()
