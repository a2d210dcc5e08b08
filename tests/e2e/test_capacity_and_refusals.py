"""Capacity, and requests Lamina cannot honour: refused clearly, never accepted and ignored."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import (
    Server,
    create_function,
    key,
    start_server,
    stop_server,
    unique_name,
)

ONE_SECOND = "import time\ndef handler(e, c):\n    time.sleep(1)\n    return 'done'\n"
TWENTY_SECONDS = "import time\ndef handler(e, c):\n    time.sleep(20)\n    return 'done'\n"
SANDBOX_ID = "import uuid\nSANDBOX = uuid.uuid4().hex\ndef handler(e, c):\n    return SANDBOX\n"


def test_a_full_worker_makes_room_by_evicting_idle_sandboxes(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--worker-memory", "1024")
    try:
        lam = server.client()
        names = [create_function(lam, SANDBOX_ID, MemorySize=512) for _ in range(3)]

        for name in names:
            response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
            assert "FunctionError" not in response

        per_function = server.state()["sandboxes"]["per_function"]
        assert per_function == {key(names[1]): 1, key(names[2]): 1}
    finally:
        stop_server(server)


def test_a_function_no_worker_could_ever_hold_answers_a_service_error(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--worker-memory", "512")
    try:
        lam = server.client()
        name = create_function(lam, SANDBOX_ID, MemorySize=1024)

        with pytest.raises(ClientError) as caught:
            lam.invoke(FunctionName=name)  # type: ignore[attr-defined]

        error = caught.value.response
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert error["Error"]["Code"] == "ServiceException"
        assert "needs 1024 MB, 512 MB free" in error["Error"]["Message"]
    finally:
        stop_server(server)


def test_a_burst_beyond_the_workers_memory_waits_for_busy_sandboxes_and_all_succeed(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data", "--worker-memory", "512")  # 4 sandboxes
    try:
        lam = server.client(max_pool_connections=12)
        # The third round of the burst waits about two invokes' time: well within 30 s.
        name = create_function(lam, ONE_SECOND, MemorySize=128, Timeout=30)

        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(lambda _: outcome(lam, name), range(12)))

        scaling = server.state()["scaling"]
        assert outcomes == ['"done"'] * 12
        assert scaling["created"] <= 4
        assert scaling["handoffs"] >= 8
    finally:
        stop_server(server)


def test_an_invoke_that_finds_no_room_within_its_init_limit_and_timeout_is_throttled(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data", "--worker-memory", "512")
    try:
        # One attempt only: botocore retries a throttle, and the retry would wait again.
        lam = server.client(retries={"total_max_attempts": 1}, max_pool_connections=2)
        holder = create_function(lam, TWENTY_SECONDS, MemorySize=512, Timeout=30)
        # It waits for room 10 s (Lambda's init limit) and its 1 s timeout: 11 s in all.
        waiter = create_function(lam, ONE_SECOND, MemorySize=128, Timeout=1)

        with ThreadPoolExecutor(1) as pool:
            holding = pool.submit(outcome, lam, holder)
            until_busy(server, 1)
            refused = outcome(lam, waiter)
            held = holding.result()

        assert refused == "429 TooManyRequestsException ConcurrentInvocationLimitExceeded"
        assert held == '"done"'
    finally:
        stop_server(server)


def outcome(lam: object, name: str) -> str:
    """The invoke's payload, or its HTTP status, error code and throttle reason."""
    try:
        response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
        return str(response["Payload"].read().decode())
    except ClientError as exc:
        error = exc.response
        status = error["ResponseMetadata"]["HTTPStatusCode"]
        return f"{status} {error['Error']['Code']} {error.get('Reason', '')}".strip()


def until_busy(server: Server, count: int) -> None:
    """Wait until `count` sandboxes are busy, as Lamina reports them."""
    for _ in range(300):
        if server.state()["sandboxes"]["busy"] >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"never {count} busy sandboxes")


def test_layers_are_refused_because_no_layer_version_exists(lam: object) -> None:
    layer = "arn:aws:lambda:us-east-1:000000000000:layer:tools:1"
    name = unique_name()

    with pytest.raises(ClientError) as caught:
        create_function(lam, SANDBOX_ID, FunctionName=name, Layers=[layer], wait=False)

    assert caught.value.response["Error"] == {
        "Code": "InvalidParameterValueException",
        "Message": f"Layer version {layer} does not exist.",
    }
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=name)  # type: ignore[attr-defined]


def test_an_architecture_no_worker_runs_is_refused(lam: object) -> None:
    with pytest.raises(ClientError) as caught:
        create_function(lam, SANDBOX_ID, Architectures=["arm64"], wait=False)

    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert caught.value.response["Error"]["Message"] == (
        "No Lamina worker runs the arm64 architecture; workers here run: x86_64."
    )


def test_a_payload_nested_past_lambdas_limit_is_invalid_content(lam: object) -> None:
    name = create_function(lam, SANDBOX_ID)

    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName=name, Payload=b"[" * 5000 + b"]" * 5000)  # type: ignore[attr-defined]

    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "InvalidRequestContentException"
    assert (
        "Document nesting depth (1001) exceeds the maximum allowed (1000"
        in (error["Error"]["Message"])
    )


def test_a_code_upload_over_the_request_limit_is_413_not_a_server_error(server: Server) -> None:
    name = create_function(server.client(), SANDBOX_ID)

    response = server.signed(
        "PUT",
        f"/2015-03-31/functions/{name}/code",
        b"x" * 70_200_000,
        **{"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["X-Amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert response.json()["Message"] == (
        "Request must be smaller than 70167211 bytes for the UpdateFunctionCode operation"
    )


def test_the_sandbox_user_has_an_account_but_the_hosts_accounts_are_invisible(
    lam: object,
) -> None:
    code = (
        "import os, pwd\n"
        "def handler(e, c):\n"
        "    return {'user': pwd.getpwuid(os.getuid()).pw_name, 'uid': os.getuid(),\n"
        "            'home': os.path.expanduser('~'),\n"
        "            'accounts': [p.pw_name for p in pwd.getpwall()]}\n"
    )
    name = create_function(lam, code)

    body = json.loads(lam.invoke(FunctionName=name)["Payload"].read())  # type: ignore[attr-defined]

    assert body == {
        "user": "sbx_user1051",
        "uid": 993,
        "home": "/home/sbx_user1051",
        "accounts": ["root", "sbx_user1051"],
    }


def test_the_log_file_holds_start_output_end_and_report_in_order(
    lam: object, server: Server
) -> None:
    name = create_function(lam, "def handler(e, c):\n    print('in between')\n")

    response = lam.invoke(FunctionName=name, LogType="Tail")  # type: ignore[attr-defined]

    tail = base64.b64decode(response["LogResult"]).decode()
    text = server.function_log(name)
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    order = [f"START RequestId: {request_id}", "in between", f"END RequestId: {request_id}",
             f"REPORT RequestId: {request_id}"]  # fmt: skip
    positions = [text.index(line) for line in order]
    assert positions == sorted(positions)
    assert all(line in tail for line in order)


def test_an_init_slower_than_ten_seconds_gets_the_function_timeout(lam: object) -> None:
    code = "import time\ntime.sleep(10.5)\ndef handler(e, c):\n    return 'ready'\n"
    name = create_function(lam, code, Timeout=20)

    response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]

    assert response["Payload"].read() == b'"ready"'
