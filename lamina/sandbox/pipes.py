"""Waiting on and reading pipes from the event loop without a thread."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any


async def readable(fd: int) -> None:
    """Return once `fd` has data to read or its writers are all gone."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def read_document(fd: int) -> Any | None:
    """The JSON document a process writes to the pipe `fd`, read as soon as it is whole; None
    if the writers are gone first or the pipe fails.

    A writer may send one document in several writes (bubblewrap's info document does), and
    waiting on the pipe leaves it non-blocking under uvloop, so a read can find part of the
    document and then nothing yet: each part is awaited until the whole parses. The pipe is
    not read past the document's end.
    """
    text = b""
    while True:
        await readable(fd)
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            continue
        except OSError:
            return None
        if not chunk:
            return None

        text += chunk
        try:
            return json.loads(text)
        except ValueError:
            continue
