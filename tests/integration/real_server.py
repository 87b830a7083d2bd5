"""A real `labelwise serve` (the installed CLI, its default worker count) for tests that must see what an operator
sees, and a way to tell which worker process answered a connection (from /proc, Linux only)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.api.serving_fakes import wait_all_ready, wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    port: int
    log: str = ""  # the server's stderr, once it has stopped
    lines: list[str] = field(default_factory=list)  # what it has written so far
    reader: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def read_log(self) -> str:
        """Once the process has ended: its whole stderr, kept in `log`."""
        if self.reader is not None:
            self.reader.join(timeout=10)
        self.log = "".join(self.lines)
        return self.log


def start_serve(env: Mapping[str, str], *, ready_timeout: float = 90.0, root_path: str = "") -> RunningServer:
    """`labelwise serve` with `env` (LABELWISE_* of the caller's environment and PROMETHEUS_MULTIPROC_DIR removed
    first), once every worker is ready (under `root_path` when it serves under a prefix). Its stderr is read while
    it runs. Stop it with `labelwise_serve`'s exit, or `kill_serve`."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc to see which worker answered")
    command = Path(sys.executable).with_name("labelwise")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LABELWISE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    full = clean | {"LABELWISE_PORT": str(port)} | dict(env)
    process = subprocess.Popen([str(command), "serve"], env=full, stderr=subprocess.PIPE, text=True)
    server = RunningServer(process, port)
    # Read stderr while the server runs: a worker whose log fills the pipe's 64 KiB blocks in its next write, and
    # with an access line per request that took a few hundred requests (the outage test hung on it, at random).
    server.reader = threading.Thread(target=lambda: server.lines.extend(process.stderr or ()), daemon=True)
    server.reader.start()
    try:
        wait_all_ready(server.base + root_path, timeout=ready_timeout)
    except BaseException:
        kill_serve(server)
        raise
    return server


def kill_serve(server: RunningServer) -> None:
    """SIGKILL the server and every process under it at once (what a machine losing power does to it): no worker
    finishes its chunk or writes anything more."""
    tree = _descendants(server.process.pid)
    for pid in [server.process.pid, *tree]:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=60)
    server.read_log()
    # The workers are not ours to reap (the killed parent's), but they are gone before the next server starts.
    wait_until(lambda: all(_state(pid) in ("Z", "X") for pid in tree), timeout=30)


@contextmanager
def labelwise_serve(
    env: Mapping[str, str], *, ready_timeout: float = 90.0, root_path: str = ""
) -> Iterator[RunningServer]:
    """`labelwise serve` with `env` (see `start_serve`) until every worker is ready; SIGINT at exit, and the exit
    must be clean. Its log is the process's stderr, read while it runs and kept in `server.log` at exit."""
    server = start_serve(env, ready_timeout=ready_timeout, root_path=root_path)
    process = server.process
    try:
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        stderr = server.read_log()
    assert process.returncode == 0, stderr[-3000:]
    tracebacks = [line[:400] for line in stderr.splitlines() if "Traceback" in line]
    assert not tracebacks, tracebacks


def _descendants(parent: int) -> list[int]:
    found, todo = [], [parent]
    while todo:
        children = _children(todo.pop())
        found += children
        todo += children
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(stat.parent.name))
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with os.scandir(f"/proc/{pid}/fd") as entries:
        for entry in entries:
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _tcp_sockets() -> Iterator[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every TCP socket of this network namespace."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            local, remote, state, inode = parts[1], parts[2], parts[3], int(parts[9])
            yield int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16), state, inode


def worker_pids(server: RunningServer) -> set[int]:
    """The server's worker processes: its children that listen on its port."""
    listening = {inode for local, _, state, inode in _tcp_sockets() if local == server.port and state == "0A"}
    return {pid for pid in _children(server.process.pid) if _socket_inodes(pid) & listening}


def answering_worker(server: RunningServer, connection: http.client.HTTPConnection) -> int:
    """The pid of the worker holding the server's end of `connection` (which must still be open)."""
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    ends = {inode for local, remote, _, inode in _tcp_sockets() if local == server.port and remote == client_port}
    holders = [pid for pid in worker_pids(server) if _socket_inodes(pid) & ends]
    assert len(holders) == 1, f"connection from port {client_port} held by {holders}"
    return holders[0]
