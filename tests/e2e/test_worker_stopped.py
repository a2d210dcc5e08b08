"""A worker stopped with SIGSTOP runs on but serves nothing: the health answer says so.

Its process is alive, so the platform does not start it again; its lease lapses, it leaves
the fleet, and it must no longer count as up. SIGCONT brings it back.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import requests

from tests.conftest import Server, start_server, stop_server
from tests.e2e.test_worker_restart import worker_pids


def wait_for_health(server: Server, status: str, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    body: dict = {}
    while time.monotonic() < deadline:
        answer = requests.get(f"{server.url}/_lamina/health", timeout=10)
        body = {"code": answer.status_code, **answer.json()}
        if body["status"] == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"health never became {status}: {body}")


def test_health_is_unavailable_while_the_only_worker_is_stopped(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "1")
    try:
        (worker,) = worker_pids(server.process.pid)
        os.kill(worker, signal.SIGSTOP)
        try:
            body = wait_for_health(server, "unavailable")
            assert (body["code"], body["up"]) == (503, [])
        finally:
            os.kill(worker, signal.SIGCONT)
        body = wait_for_health(server, "ok")
        assert (body["code"], body["up"]) == (200, ["worker-1"])
        assert worker_pids(server.process.pid) == [worker]
    finally:
        assert stop_server(server) == 0


def test_health_is_degraded_while_one_of_two_workers_is_stopped(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "2")
    try:
        first, _ = worker_pids(server.process.pid)
        os.kill(first, signal.SIGSTOP)
        try:
            body = wait_for_health(server, "degraded")
            assert body["code"] == 200
            assert len(body["up"]) == 1
        finally:
            os.kill(first, signal.SIGCONT)
        wait_for_health(server, "ok")
    finally:
        assert stop_server(server) == 0
