"""The worker loop: lease a chunk, process it while renewing the lease, commit; assemble finished jobs.

The server runs one in a background thread (`embedded_worker`); `labelwise worker` runs more, on this machine or
on others that share the database and the data directory. Workers coordinate only through the database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from labelwise.errors import StorageUnavailable
from labelwise.services.jobs import JobService
from labelwise.storage.jobs_repository import ClaimedChunk

logger = logging.getLogger(__name__)


def worker_name() -> str:
    """A name unique to this worker: host, process and a random part (a restarted process gets a new one)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{os.urandom(3).hex()}"


class JobWorker:
    """Processes chunks until stopped; `run_once` is one step, for tests and for the loop."""

    def __init__(
        self,
        service: JobService,
        *,
        name: str | None = None,
        poll_seconds: float = 0.5,
        after_write: Callable[[ClaimedChunk], None] | None = None,
    ) -> None:
        self.service = service
        self.name = name or worker_name()
        self.poll_seconds = poll_seconds
        self.after_write = after_write
        self.chunks_done = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """Process one chunk if there is one, else assemble finished jobs; whether anything was done."""
        config = self.service.config
        chunk = self.service.repo.claim(self.name, config.lease_seconds, config.max_attempts)
        if chunk is None:
            self.service.repo.reap(config.max_attempts)
            return self.service.finish_ready() > 0
        renewer = _LeaseRenewer(self.service, chunk, self.name)
        renewer.start()
        try:
            if self.service.process(chunk, self.name, self.after_write):
                self.chunks_done += 1
        except Exception as exc:
            logger.warning("chunk failed", exc_info=True, extra={"job": chunk.job_id, "chunk": chunk.seq})
            self.service.fail_attempt(chunk, self.name, exc)
        finally:
            renewer.stop()
        return True

    def run(self) -> None:
        """Loop until `stop()`; a database that is away is retried after `poll_seconds`."""
        logger.info("worker started", extra={"worker": self.name})
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except StorageUnavailable:  # the database logs its outage once; look again after `poll_seconds`
                busy = False
            except Exception:
                logger.exception("worker step failed; retrying", extra={"worker": self.name})
                busy = False
            if not busy:
                self._stop.wait(self.poll_seconds)
        logger.info("worker stopped", extra={"worker": self.name, "chunks": self.chunks_done})

    def start(self) -> None:
        """Run the loop in a daemon thread (the server's embedded worker)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="labelwise-job-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end after the chunk in hand, and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


class _LeaseRenewer:
    """Renews a chunk's lease every third of its length while the chunk is processed (training can take minutes)."""

    def __init__(self, service: JobService, chunk: ClaimedChunk, owner: str) -> None:
        self.service = service
        self.chunk = chunk
        self.owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="labelwise-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seconds = self.service.config.lease_seconds
        while not self._stop.wait(seconds / 3):
            try:
                if not self.service.repo.renew(self.chunk.job_id, self.chunk.seq, self.owner, seconds):
                    return  # lost: the commit will find out and record nothing
            except Exception:
                logger.warning("lease renewal failed", exc_info=True, extra={"job": self.chunk.job_id})
