"""Concurrency limits and scaling on a running Lamina: bursts, reservations, dead callers."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, key, start_server, stop_server

SHORT = "import time\ndef handler(e, c):\n    time.sleep(0.1)\n    return 'ok'\n"
TWO_SECONDS = "import time\ndef handler(e, c):\n    time.sleep(2)\n    return 'done'\n"


def outcome(lam: object, name: str) -> str:
    try:
        response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
        return str(response["Payload"].read().decode())
    except ClientError as exc:
        return f"{exc.response['ResponseMetadata']['HTTPStatusCode']} {exc.response['Reason']}"


def burst(lam: object, name: str, count: int) -> list[str]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: outcome(lam, name), range(count)))


def test_twenty_concurrent_invokes_of_a_new_function_all_succeed(server: Server) -> None:
    lam = server.client(max_pool_connections=20)
    name = create_function(lam, SHORT)

    outcomes = burst(lam, name, 20)

    assert outcomes == ['"ok"'] * 20


def test_reserved_concurrency_of_one_throttles_the_second_concurrent_invoke(
    server: Server,
) -> None:
    lam = server.client()
    name = create_function(lam, TWO_SECONDS)
    lam.put_function_concurrency(  # type: ignore[attr-defined]
        FunctionName=name, ReservedConcurrentExecutions=1
    )

    outcomes = burst(lam, name, 2)

    assert sorted(outcomes) == [
        '"done"',
        "429 ReservedFunctionConcurrentInvocationLimitExceeded",
    ]


def test_reserved_zero_throttles_all_and_the_unreserved_pool_shrinks_and_grows_back(
    server: Server,
) -> None:
    lam = server.client()
    name = create_function(lam, SHORT)

    def unreserved() -> int:
        settings = lam.get_account_settings()  # type: ignore[attr-defined]
        return int(settings["AccountLimit"]["UnreservedConcurrentExecutions"])

    before = unreserved()
    lam.put_function_concurrency(  # type: ignore[attr-defined]
        FunctionName=name, ReservedConcurrentExecutions=0
    )
    lam_outcomes = [outcome(lam, name) for _ in range(3)]
    during = unreserved()
    lam.delete_function_concurrency(FunctionName=name)  # type: ignore[attr-defined]

    assert lam_outcomes == ["429 ReservedFunctionConcurrentInvocationLimitExceeded"] * 3
    assert during == before  # a reservation of 0 takes nothing from the pool
    lam.put_function_concurrency(  # type: ignore[attr-defined]
        FunctionName=name, ReservedConcurrentExecutions=50
    )
    assert unreserved() == before - 50
    lam.delete_function_concurrency(FunctionName=name)  # type: ignore[attr-defined]
    assert unreserved() == before
    assert outcome(lam, name) == '"ok"'


def test_a_burst_of_two_hundred_short_invokes_creates_sandboxes_for_its_concurrency(
    tmp_path: Path,
) -> None:
    # Two hundred sandboxes starting at once can delay the worker's lease renewals on a busy
    # machine; a long lease keeps membership out of what this test measures.
    server = start_server(tmp_path / "data", "--worker-memory", "32768", "--lease", "60")
    try:
        lam = server.client(max_pool_connections=200)
        # The sandboxes share two cores: a 100 ms sleep may take seconds to be scheduled.
        name = create_function(lam, SHORT, Timeout=30)

        outcomes = burst(lam, name, 200)

        scaling = server.state()["scaling"]
        assert outcomes == ['"ok"'] * 200
        # Nearly every sandbox started was needed: at some instant about that many invokes
        # ran at once. Starting one per request would create 200.
        assert scaling["created"] <= 1.25 * scaling["peak_busy"]
        assert scaling["created"] <= 150
    finally:
        stop_server(server)


def test_a_caller_killed_mid_invoke_gives_its_lease_back_within_timeout_and_grace(
    server: Server,
) -> None:
    lam = server.client()
    name = create_function(lam, "import time\ndef handler(e, c):\n    time.sleep(60)\n", Timeout=3)
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, server.url, name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    leases = lambda: server.state()["counting"]["in_flight"].get(key(name), 0)  # noqa: E731
    deadline = time.monotonic() + 20
    while leases() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leases() == 1

    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 3 + 30 + 5  # timeout + grace + polling slack
    while leases() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert leases() == 0


CALLER = """
import sys, boto3
lam = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
lam.invoke(FunctionName=sys.argv[2])
"""
