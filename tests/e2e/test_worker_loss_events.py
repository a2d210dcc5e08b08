"""An accepted event whose worker dies while running it runs again, once: on another worker,
or on the one the platform starts in place of the dead one."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import requests

from tests.conftest import Server, create_function, key, start_server, stop_server
from tests.e2e.asyncwatch import MARKER, runs, wait_until


def worker_pid(server_pid: int, worker_id: str) -> int:
    """The process of `lamina worker --id worker_id` started by this server."""
    wanted = f"--id\0{worker_id}\0".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == server_pid and wanted in cmdline:
            return int(entry.name)
    raise AssertionError(f"no process for {worker_id}")


def restarted(server: Server, worker_id: str, killed: int) -> bool:
    """Whether the platform has the worker up again in a process other than `killed`."""
    up = requests.get(f"{server.url}/_lamina/health", timeout=10).json()["up"]
    try:
        return worker_id in up and worker_pid(server.process.pid, worker_id) != killed
    except AssertionError:  # between the killed process and the next
        return False


def test_an_event_on_a_worker_killed_mid_run_runs_again(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "2", "--event-retry-scale", "0.01")
    try:
        lam = server.client()
        name = create_function(lam, MARKER, Timeout=30)
        response = lam.invoke(  # type: ignore[attr-defined]
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"hold": 3})
        )
        request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

        def busy_worker() -> str | None:
            report = server.signed("GET", "/_lamina/v1/workers").json()
            return next((w["worker_id"] for w in report["workers"] if w["busy"]), None)

        victim = wait_until(busy_worker, seconds=30, what="the event running")
        killed = worker_pid(server.process.pid, victim)
        os.kill(killed, signal.SIGKILL)

        ran = wait_until(lambda: runs(server.data_dir, name), seconds=60, what="the rerun")
        assert ran == [[request_id]]
        wait_until(lambda: key(name) not in server.state()["events"], what="the event settled")
        # The victim is back, a new process of the platform's in place of the killed one.
        wait_until(lambda: restarted(server, victim, killed), what="the victim started again")
    finally:
        stop_server(server)
