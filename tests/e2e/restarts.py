"""Killing a worker of `lamina up` and waiting for the platform to start it again.

While the platform is paused (SIGSTOP) it can neither reap nor restart a worker killed
meanwhile, so a test can look at what the dead worker left before the restart sweeps it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from tests.conftest import Server


@contextlib.contextmanager
def platform_paused(server: Server) -> Iterator[None]:
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def dead(pid: int) -> bool:
    """Whether the process has exited: gone, or a zombie its paused parent has not reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def started_at(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def wait_for_restart(
    server: Server, worker_id: str, killed: int, find: Callable[[], int], seconds: float = 60
) -> int:
    """The pid of the worker the platform started in place of `killed`, once it is up: it
    swept what the killed one left before it joined."""
    deadline = time.monotonic() + seconds
    pid = killed
    while pid == killed:
        assert time.monotonic() < deadline, f"{worker_id} was not started again"
        with contextlib.suppress(AssertionError):
            pid = find()
        time.sleep(0.05)
    # Its process exists before it is up; the platform counts it up once it has joined.
    while worker_id not in _up(server):
        assert time.monotonic() < deadline, f"{worker_id} started again but never came up"
        time.sleep(0.05)
    return pid


def _up(server: Server) -> list[str]:
    return requests.get(f"{server.url}/_lamina/health", timeout=10).json().get("up", [])
