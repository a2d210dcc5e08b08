"""One sandbox's connections to the Runtime API are bounded, so it cannot take the worker's
descriptors from the other sandboxes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from lamina.sandbox.runtime_api import MAX_CONNECTIONS, RuntimeApiServer
from tests.conftest import FakeSandbox

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: sandbox\r\n\r\n"


async def serving(runtime_api: RuntimeApiServer, directory: Path, name: str) -> str:
    """The socket path of a sandbox named `name` that the server serves."""
    path = str(directory / f"{name}.sock")
    await runtime_api.open(path)
    await runtime_api.attach(FakeSandbox(path, name))  # type: ignore[arg-type]
    return path


async def _ask(path: str, wait_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(NEXT)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s)
    finally:
        writer.close()


async def test_a_sandbox_past_its_connections_waits_while_others_are_served(
    runtime_api: RuntimeApiServer, tmp_path: Path
) -> None:
    greedy = await serving(runtime_api, tmp_path, "greedy")
    other = await serving(runtime_api, tmp_path, "other")
    held: list[Any] = []
    try:
        for _ in range(MAX_CONNECTIONS):
            held.append(await asyncio.open_unix_connection(greedy))
        # Every held connection has been accepted once the last of them is answered.
        reader, writer = held[-1]
        writer.write(NEXT)
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)

        waiting = asyncio.ensure_future(_ask(greedy, wait_s=30))
        done, _ = await asyncio.wait([waiting], timeout=0.5)
        others_answer = await _ask(other)
        held.pop()[1].close()
        greedy_answer = await waiting
    finally:
        for _, writer in held:
            writer.close()

    assert not done, "a connection past the bound was served"
    assert b"Lambda-Runtime-Aws-Request-Id: id-other" in others_answer
    assert b"Lambda-Runtime-Aws-Request-Id: id-greedy" in greedy_answer


async def test_a_shut_sandbox_gives_no_answer_and_frees_its_socket(
    runtime_api: RuntimeApiServer, tmp_path: Path
) -> None:
    path = await serving(runtime_api, tmp_path, "gone")
    assert b"200 OK" in await _ask(path)

    await runtime_api.shut(path)

    with pytest.raises(ConnectionRefusedError):
        await _ask(path)


async def test_malformed_http_from_a_sandbox_is_no_error_in_the_worker_log(
    runtime_api: RuntimeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = await serving(runtime_api, tmp_path, "noisy")
    garbage = [
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
    ]

    with caplog.at_level(logging.DEBUG):
        for request in garbage:
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(request)
            await asyncio.wait_for(reader.read(), 5)
            writer.close()
    still = await _ask(path)

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any(r.name == "lamina.sandbox.runtime_api.requests" for r in caplog.records)
    assert b"200 OK" in still
