"""The event loop Lamina's processes run on (uvloop, libuv's loop), and how they listen.

uvloop serves the same asyncio API with its loop, transports and socket calls in C, which cuts
the per-request cost of the frontend and the workers.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

# Connections a listening socket holds before they are accepted (the kernel caps it at
# net.core.somaxconn). A burst of invokes opens one connection each, to the frontend and from
# it to a worker; with the usual 128 the rest are dropped, retried a second later, and a busy
# worker looks unreachable to the frontend.
LISTEN_BACKLOG = 4096


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on a new uvloop event loop, as `asyncio.run` does."""
    allow_open_files()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def allow_open_files() -> None:
    """Raise this process's soft limit on open files to its hard limit.

    A worker holds about fourteen descriptors per sandbox (pipes, its Runtime API socket and
    connection, bubblewrap's info pipe), and the frontend one per connection in flight; the
    usual soft limit of 1024 would stop a worker at some seventy sandboxes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
