"""The frontend and every worker queue a burst's worth of connections before accepting them."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lamina.eventloop import LISTEN_BACKLOG
from tests.conftest import Server, create_function


def backlog(port: int) -> int:
    """The accept queue's length of the socket listening on `port`, as the kernel has it."""
    listing = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    # Columns: State Recv-Q Send-Q Local Peer; Send-Q of a listening socket is its backlog.
    return int(listing.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_frontend_and_each_worker_listen_with_a_backlog_for_a_burst(server: Server) -> None:
    expected = min(LISTEN_BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
    workers = server.signed("GET", "/_lamina/v1/workers").json()["workers"]
    ports = [urlsplit(server.url).port] + [urlsplit(w["url"]).port for w in workers]

    assert len(ports) == 3
    assert [backlog(port) for port in ports if port is not None] == [expected] * 3


def test_the_frontend_calls_the_workers_it_started_on_owner_only_unix_sockets(
    server: Server,
) -> None:
    workers = server.signed("GET", "/_lamina/v1/workers").json()["workers"]
    assert len(workers) == 2
    for worker in workers:
        path = server.data_dir / "workers" / worker["worker_id"] / "api.sock"
        mode = path.stat().st_mode

        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert health_over_unix_socket(path)["zone"] == worker["zone"]

    client = server.client()
    name = create_function(client, "def handler(event, context):\n    return 7\n")
    payloads = [client.invoke(FunctionName=name)["Payload"].read() for _ in range(3)]
    assert payloads == [b"7"] * 3


class UnixConnection(http.client.HTTPConnection):
    """HTTP to a server listening on a Unix socket."""

    def __init__(self, path: Path) -> None:
        super().__init__("worker", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(self.path))


def health_over_unix_socket(path: Path) -> dict:
    connection = UnixConnection(path)
    try:
        connection.request("GET", "/v1/health")
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        connection.close()
