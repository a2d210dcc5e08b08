"""The frontend and every worker queue a burst's worth of connections before accepting them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lamina.eventloop import LISTEN_BACKLOG
from tests.conftest import Server


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
