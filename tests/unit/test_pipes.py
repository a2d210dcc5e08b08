"""A JSON document written to a pipe in parts is read whole, on either event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

import pytest
import uvloop

from lamina.sandbox.pipes import read_document

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def read_written_in_parts(make_loop: Callable[[], asyncio.AbstractEventLoop]) -> object:
    """What `read_document` returns for a document written as bubblewrap writes its info."""
    read_end, write_end = os.pipe()

    async def scenario() -> object:
        reading = asyncio.ensure_future(read_document(read_end))
        os.write(write_end, b'{\n    "child-pid": 4')
        await asyncio.sleep(0.01)  # the reader sees the first part alone
        assert not reading.done()
        os.write(write_end, b'669,\n    "net-namespace": 1\n}\n')
        return await asyncio.wait_for(reading, 5)

    try:
        with asyncio.Runner(loop_factory=make_loop) as runner:
            return runner.run(scenario())
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_document_written_in_parts_is_read_whole(loop: str) -> None:
    assert read_written_in_parts(LOOPS[loop]) == {"child-pid": 4669, "net-namespace": 1}


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_writer_gone_before_the_end_gives_nothing(loop: str) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b'{"child-pid": ')
    os.close(write_end)

    async def scenario() -> object:
        return await asyncio.wait_for(read_document(read_end), 5)

    try:
        with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
            assert runner.run(scenario()) is None
    finally:
        os.close(read_end)
