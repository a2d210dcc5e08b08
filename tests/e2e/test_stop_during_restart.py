"""`lamina up` stopped while it waits to start a killed worker again stops cleanly.

The killed worker's sandboxes die with it, but what they held on the host (their cgroups,
their socket directory) would be removed only by the worker's next start, which never comes:
the platform removes it as it stops.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from lamina.sandbox import leftovers
from tests.conftest import create_function, sandbox_processes, start_server, stop_server
from tests.e2e.restarts import dead, platform_paused
from tests.e2e.test_worker_restart import worker_pids


def left_on_host(name: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    cgroups = [*root.glob(name), *root.glob(f"*/{name}")]
    return [*cgroups, *[p for p in [leftovers.socket_root(name)] if p.exists()]]


def test_stopping_during_a_restart_backoff_leaves_nothing_of_the_killed_worker(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, "--workers", "1")
    stopped = False
    try:
        lam: Any = server.client(retries={"total_max_attempts": 1})
        name = create_function(lam, "def handler(event, context):\n    return 'up'\n")
        assert lam.invoke(FunctionName=name)["Payload"].read() == b'"up"'
        (worker,) = worker_pids(server.process.pid)
        owner = leftovers.worker_name("worker-1", data_dir / "workers" / "worker-1")
        assert left_on_host(owner), "the worker's sandboxes hold cgroups while it runs"

        with platform_paused(server):
            os.kill(worker, signal.SIGKILL)
            while not dead(worker):
                pass
            # Delivered as the platform resumes: within the first 0.5 s restart delay.
            server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
        stopped = True

        assert sandbox_processes(data_dir) == []
        assert left_on_host(owner) == []
    finally:
        if not stopped:
            stop_server(server)
