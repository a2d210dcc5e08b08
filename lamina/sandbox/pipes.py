"""Waiting on a pipe from the event loop without a thread."""

from __future__ import annotations

import asyncio


async def readable(fd: int) -> None:
    """Return once `fd` has data to read or its writers are all gone."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
