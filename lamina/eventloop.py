"""The event loop Lamina's processes run on: uvloop, libuv's loop.

uvloop serves the same asyncio API with its loop, transports and socket calls in C, which cuts
the per-request cost of the frontend and the workers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to its end on a new uvloop event loop, as `asyncio.run` does."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
