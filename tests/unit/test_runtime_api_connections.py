"""One sandbox's connections to the Runtime API are bounded, so it cannot take the worker's
descriptors from the other sandboxes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from lamina.sandbox.instance import Invocation
from lamina.sandbox.runtime_api import MAX_CONNECTIONS, RuntimeApiServer

NEXT = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: sandbox\r\n\r\n"


class FakeSandbox:
    def __init__(self, socket_path: str, name: str) -> None:
        self.socket_path = socket_path
        self.name = name

    async def next_invocation(self) -> Invocation:
        return Invocation(f"id-{self.name}", b"{}", f"arn:{self.name}")


async def _ask(path: str, wait_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(NEXT)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s)
    finally:
        writer.close()


async def test_a_sandbox_past_its_connections_waits_while_others_are_served(
    tmp_path: Path,
) -> None:
    server = RuntimeApiServer()
    await server.start()
    held: list[Any] = []
    try:
        greedy, other = str(tmp_path / "greedy.sock"), str(tmp_path / "other.sock")
        for path, name in ((greedy, "greedy"), (other, "other")):
            await server.open(path)
            await server.attach(FakeSandbox(path, name))  # type: ignore[arg-type]
        for _ in range(MAX_CONNECTIONS):
            held.append(await asyncio.open_unix_connection(greedy))
        # Every held connection has been accepted once one more of them is answered.
        for reader, writer in held[-1:]:
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
        await server.close()

    assert not done, "a connection past the bound was served"
    assert b"Lambda-Runtime-Aws-Request-Id: id-other" in others_answer
    assert b"Lambda-Runtime-Aws-Request-Id: id-greedy" in greedy_answer


async def test_a_shut_sandbox_gives_no_answer_and_frees_its_socket(tmp_path: Path) -> None:
    server = RuntimeApiServer()
    await server.start()
    try:
        path = str(tmp_path / "gone.sock")
        await server.open(path)
        await server.attach(FakeSandbox(path, "gone"))  # type: ignore[arg-type]
        assert b"200 OK" in await _ask(path)

        await server.shut(path)

        try:
            await _ask(path)
        except OSError as error:
            refused: OSError | None = error
        else:
            refused = None
    finally:
        await server.close()

    assert isinstance(refused, ConnectionRefusedError)


async def test_malformed_http_from_a_sandbox_is_no_error_in_the_worker_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RuntimeApiServer()
    await server.start()
    try:
        path = str(tmp_path / "noisy.sock")
        await server.open(path)
        await server.attach(FakeSandbox(path, "noisy"))  # type: ignore[arg-type]
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
    finally:
        await server.close()

    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert any(r.name == "lamina.sandbox.runtime_api.requests" for r in caplog.records)
    assert b"200 OK" in still
