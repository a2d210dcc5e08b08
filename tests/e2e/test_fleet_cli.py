"""Operating the fleet from the command line: list, drain and explain placement."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from lamina.auth.platform import TOKEN_HEADER
from tests.conftest import Server, create_function, start_server, stop_server


@pytest.fixture(scope="module")
def fleet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("fleet") / "data"
    running = start_server(data_dir, "--workers", "2", "--zones", "a,b", "--worker-memory", "1024")
    yield running
    stop_server(running)


def lamina(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamina", *args, "--url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def workers(server: Server) -> dict[str, dict]:
    report = server.signed("GET", "/_lamina/v1/workers").json()
    return {w["worker_id"]: w for w in report["workers"]}


def cold(reply: dict) -> bool:
    return "Init Duration" in base64.b64decode(reply["LogResult"]).decode()


def test_workers_report_zone_packing_density_and_idle_memory(fleet_server: Server) -> None:
    lam = fleet_server.client()
    name = create_function(lam, "def handler(e, c):\n    return 1\n", MemorySize=256)
    lam.invoke(FunctionName=name)  # type: ignore[attr-defined]

    listed = lamina(fleet_server, "worker", "list")

    assert listed.returncode == 0, listed.stderr
    assert "worker-1" in listed.stdout and "worker-2" in listed.stdout
    report = fleet_server.signed("GET", "/_lamina/v1/workers").json()
    holder = next(w for w in report["workers"] if w["sandboxes"])
    assert holder["memory_idle_mb"] >= 256
    assert holder["packing_density"] == holder["memory_reserved_mb"] / 1024
    assert report["memory_idle_mb"] == sum(w["memory_idle_mb"] for w in report["workers"])
    assert {w["zone"] for w in report["workers"]} == {"a", "b"}


def test_a_drained_worker_gets_no_new_sandboxes_and_explain_says_why(fleet_server: Server) -> None:
    lam = fleet_server.client()
    name = create_function(lam, "def handler(e, c):\n    return 1\n")
    lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
    holder = next(w for w, m in workers(fleet_server).items() if m["sandboxes"])
    other = next(w for w in workers(fleet_server) if w != holder)

    drained = lamina(fleet_server, "worker", "drain", holder)

    assert drained.returncode == 0, drained.stderr
    assert f"{holder}: drained, no sandboxes left" in drained.stdout
    assert workers(fleet_server)[holder]["status"] == "drained"
    reply = lam.invoke(FunctionName=name, LogType="Tail")  # type: ignore[attr-defined]
    assert cold(reply)
    assert workers(fleet_server)[other]["sandboxes"] >= 1
    assert workers(fleet_server)[holder]["sandboxes"] == 0

    explained = lamina(fleet_server, "placement", "explain", "--last", "1")
    assert explained.returncode == 0, explained.stderr
    assert f"{name} (128 MB): placed on {other} (rejected {holder}: draining)" in explained.stdout


def test_draining_a_worker_that_is_not_a_member_fails_clearly(fleet_server: Server) -> None:
    result = lamina(fleet_server, "worker", "drain", "no-such-worker")

    assert result.returncode == 1
    assert "404 Worker not found: no-such-worker" in result.stderr


def test_a_bad_registration_is_refused_with_the_reason(fleet_server: Server) -> None:
    reply = requests.post(
        f"{fleet_server.url}/_lamina/v1/workers",
        json={"worker_id": "x"},
        headers={TOKEN_HEADER: fleet_server.platform_token()},
        timeout=10,
    )

    assert reply.status_code == 400
    assert "registration lacks" in reply.text


def test_a_registration_without_the_platform_token_is_refused(fleet_server: Server) -> None:
    unsigned = requests.post(
        f"{fleet_server.url}/_lamina/v1/workers", json={"worker_id": "x"}, timeout=10
    )
    forged = requests.post(
        f"{fleet_server.url}/_lamina/v1/workers",
        json={"worker_id": "x"},
        headers={TOKEN_HEADER: "guessed"},
        timeout=10,
    )

    assert unsigned.status_code == forged.status_code == 403
    assert forged.headers["X-Amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_running_a_worker_without_join_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lamina", "worker", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "--join URL (the frontend to join) is required" in result.stderr
