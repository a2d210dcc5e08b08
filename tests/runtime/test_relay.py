"""The runtime's relay (gVisor's sandboxes): AWS_LAMBDA_RUNTIME_API copied to the Unix socket,
and still there after a function used up the relay's descriptors."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_bootstrap import BOOTSTRAP

# The relay's own limit of open files: small, so a function reaches it quickly.
FILES = 48
START_RELAY = f"""
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({FILES}, {FILES}))
sys.path.insert(0, os.path.dirname({str(BOOTSTRAP)!r}))
import bootstrap
bootstrap.start_relay(sys.argv[1])
print("relaying", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[str]:
    """A Unix socket that echoes what each connection sends, standing in for the worker."""
    path = str(tmp_path / "runtime.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(256)

    def serve(connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = server.accept()
                threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield path
    server.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _through(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"ping")
        return client.recv(4)


def test_the_relay_outlives_a_flood_that_takes_all_its_descriptors(echo: str) -> None:
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", START_RELAY, echo],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"},
        start_new_session=True,
    ) as relay:
        try:
            assert relay.stdout is not None and relay.stdout.readline() == b"relaying\n"
            assert _through(port) == b"ping"

            flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(2 * FILES)]
            time.sleep(0.5)  # the relay meets its limit of files meanwhile
            for connection in flood:
                connection.close()

            answer = _through(port)
        finally:
            # The relay is a forked child: its process group holds it.
            os.killpg(relay.pid, signal.SIGKILL)

    assert answer == b"ping"
