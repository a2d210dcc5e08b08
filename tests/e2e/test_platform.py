"""`lamina up` as a whole: account limits, keep-alive, and a clean stop."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import create_function, start_server, stop_server

SLOW = "import time\ndef handler(e, c):\n    time.sleep(1)\n    return 'done'\n"


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, found through /proc's children lists."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_account_limit_throttles_with_lambdas_reason(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--concurrency-limit", "2")
    try:
        lam = server.client()
        name = create_function(lam, SLOW)

        def attempt(_: int) -> str:
            try:
                lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
                return "ok"
            except ClientError as exc:
                return str(exc.response.get("Reason"))

        with ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(attempt, range(4)))

        assert outcomes.count("ok") == 2
        assert outcomes.count("ConcurrentInvocationLimitExceeded") == 2
        settings = lam.get_account_settings()  # type: ignore[attr-defined]
        assert settings["AccountLimit"]["ConcurrentExecutions"] == 2
    finally:
        stop_server(server)


def test_idle_sandboxes_are_reclaimed_after_the_keep_alive(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--keep-alive", "0.5")
    try:
        lam = server.client()
        name = create_function(lam, "def handler(e, c):\n    return 1\n")
        lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
        assert server.state()["sandboxes"]["idle"] == 1

        deadline = time.monotonic() + 20
        while server.state()["sandboxes"]["idle"] and time.monotonic() < deadline:
            time.sleep(0.05)

        assert server.state()["sandboxes"] == {
            "idle": 0, "busy": 0, "initialising": 0, "per_function": {},
        }  # fmt: skip
        response = lam.invoke(FunctionName=name, LogType="Tail")  # type: ignore[attr-defined]
        assert response["Payload"].read() == b"1"
    finally:
        stop_server(server)


def parent_of(pid: int) -> int:
    # The command name in /proc/PID/stat may hold spaces; the fields after it do not.
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_stopping_lamina_leaves_no_worker_or_sandbox_process(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "2")
    lam = server.client()
    names = [create_function(lam, SLOW.replace("time.sleep(1)", "pass")) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda n: lam.invoke(FunctionName=n), names))  # type: ignore[attr-defined]
    processes = descendants(server.process.pid)
    bootstraps = {
        pid for pid in processes
        if b"/var/runtime/bootstrap.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"bwrap" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    }  # fmt: skip
    # The functions' runtimes and the blanks of the workers' pools. None has forked a relay:
    # the worker serves the Runtime API inside each sandbox's network namespace itself.
    relays = {pid for pid in bootstraps if parent_of(pid) in bootstraps}
    assert len(bootstraps) >= 3
    assert relays == set()

    code = stop_server(server)

    assert code == 0
    survivors = [pid for pid in processes if alive(pid)]
    assert survivors == []


def test_sigint_stops_lamina_as_ctrl_c_does(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    lam = server.client()
    lam.invoke(FunctionName=create_function(lam, "def handler(e, c):\n    return 1\n"))  # type: ignore[attr-defined]
    processes = descendants(server.process.pid)

    os.killpg(server.process.pid, 2)

    assert server.process.wait(timeout=30) == 0
    assert [pid for pid in processes if alive(pid)] == []


def test_a_function_survives_a_restart_and_still_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    try:
        lam = first.client()
        name = create_function(lam, "def handler(e, c):\n    return 'still here'\n")
        lam.put_function_concurrency(  # type: ignore[attr-defined]
            FunctionName=name, ReservedConcurrentExecutions=7
        )
    finally:
        stop_server(first)

    second = start_server(data)
    try:
        lam = second.client()
        response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
        assert json.loads(response["Payload"].read()) == "still here"
        concurrency = lam.get_function_concurrency(FunctionName=name)  # type: ignore[attr-defined]
        assert concurrency["ReservedConcurrentExecutions"] == 7
    finally:
        stop_server(second)


def test_a_worker_that_dies_is_replaced_by_a_cold_start_elsewhere(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--workers", "2")
    try:
        lam = server.client()
        name = create_function(lam, "import os\ndef handler(e, c):\n    return 'ok'\n")
        lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
        workers = [
            pid for pid in descendants(server.process.pid)
            if b"lamina\x00worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]  # fmt: skip
        assert len(workers) == 2
        os.kill(workers[0], 9)

        outcomes = []
        for _ in range(4):
            try:
                response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
                outcomes.append(response["Payload"].read())
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"].encode())

        assert outcomes[-1] == b'"ok"'
        assert set(outcomes) <= {b'"ok"', b"ServiceException"}
    finally:
        stop_server(server)


@pytest.mark.parametrize("bad", ["-1", "-5"])
def test_lamina_up_refuses_a_negative_worker_count(tmp_path: Path, bad: str) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "lamina", "up", "--workers", bad, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "cannot be negative" in result.stderr
