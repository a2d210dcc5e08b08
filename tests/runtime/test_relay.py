"""The runtime's relay (gVisor's sandboxes): AWS_LAMBDA_RUNTIME_API copied to the Unix socket,
within the worker's bound on a sandbox's connections, and still there after a function used
up the relay's descriptors."""

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
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.runtime.test_bootstrap import BOOTSTRAP

START_RELAY = """
import os, resource, sys
files = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
sys.path.insert(0, os.path.dirname(sys.argv[3]))
import bootstrap
bootstrap.start_relay(sys.argv[1])
print("relaying", flush=True)
sys.stdin.read()
"""


@dataclass
class Echo:
    """A Unix socket that echoes what each connection sends, standing in for the worker, and
    the most connections it held open at once."""

    path: str
    open: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, connection: socket.socket) -> None:
        with self.lock:
            self.open += 1
            self.most = max(self.most, self.open)
        with connection:
            while data := connection.recv(4096):
                connection.sendall(data)
        with self.lock:
            self.open -= 1


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Echo]:
    echo = Echo(str(tmp_path / "runtime.sock"))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(echo.path)
    server.listen(256)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = server.accept()
                threading.Thread(target=echo.serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield echo
    server.close()


@contextlib.contextmanager
def relay(echo: Echo, files: int) -> Iterator[int]:
    """The relay, started as the runtime starts it with a limit of `files` open files; yields
    the loopback port it serves."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    argv = [sys.executable, "-I", "-S", "-c", START_RELAY, echo.path, str(files), str(BOOTSTRAP)]
    with subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}"},
        start_new_session=True,
    ) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == b"relaying\n"
            yield port
        finally:
            # The relay is a forked child: its process group holds it.
            os.killpg(process.pid, signal.SIGKILL)


def _through(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"ping")
        return client.recv(4)


def _flood(port: int, count: int) -> None:
    """Hold `count` connections to the relay for a while, then close them."""
    flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    time.sleep(0.5)  # the relay takes what it will meanwhile
    for connection in flood:
        connection.close()


def test_the_relay_outlives_a_flood_that_takes_all_its_descriptors(echo: Echo) -> None:
    with relay(echo, files=48) as port:
        assert _through(port) == b"ping"

        _flood(port, 96)
        answer = _through(port)

    assert answer == b"ping"


def test_the_relay_holds_fewer_connections_to_the_worker_than_the_worker_accepts(
    echo: Echo,
) -> None:
    with relay(echo, files=1024) as port:
        _flood(port, 90)  # 31 taken, the rest within the listener's backlog of 64
        answer = _through(port)

    # The worker accepts 32 of a sandbox's connections; one stays free for the runtime's own.
    assert echo.most == 31
    assert answer == b"ping"
