"""`lamina up` keeps the workers it started: one that dies is started again.

A worker killed with SIGKILL (the OOM killer, an operator's mistake) costs the invokes that
were running on it; the platform then serves again once the worker is back, on its own.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import requests

from tests.conftest import create_function, start_server, stop_server


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def test_a_worker_killed_with_sigkill_is_started_again_and_serves(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "1")
    try:
        lam: Any = server.client(retries={"total_max_attempts": 1})
        name = create_function(lam, "def handler(event, context):\n    return 'up'\n")
        assert lam.invoke(FunctionName=name)["Payload"].read() == b'"up"'
        (worker,) = worker_pids(server.process.pid)

        os.kill(worker, signal.SIGKILL)

        deadline = time.monotonic() + 20
        answer: object = None
        while time.monotonic() < deadline:
            try:
                answer = lam.invoke(FunctionName=name)["Payload"].read()
            except Exception as error:  # the platform is still without its worker
                answer = error
            if answer == b'"up"':
                break
            time.sleep(0.5)
        assert answer == b'"up"'
        assert worker not in worker_pids(server.process.pid)
        health = requests.get(f"{server.url}/_lamina/health", timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
        assert health.json()["expected"] == health.json()["up"] == ["worker-1"]
    finally:
        assert stop_server(server) == 0
