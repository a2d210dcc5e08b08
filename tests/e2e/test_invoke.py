"""Invoke through boto3 against a running Lamina: results, errors, logs, reuse, limits."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import PYTHON_RUNTIME, Server, create_function, key

IDENTITY = """
import json, os, uuid
SANDBOX = uuid.uuid4().hex
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    return {"sandbox": SANDBOX, "calls": CALLS, "request_id": context.aws_request_id}
"""

SLOW_IDENTITY = IDENTITY.replace(
    "    CALLS += 1", "    CALLS += 1\n    import time; time.sleep(1)"
)


def invoke(client: object, name: str, payload: bytes | str = b"{}", **extra: object) -> dict:
    response = client.invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=payload, **extra
    )
    response["Body"] = response.pop("Payload").read()
    return response


def log_of(response: dict) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def test_a_sync_invoke_returns_the_result_with_lambdas_headers(lam: object) -> None:
    name = create_function(lam, IDENTITY)

    response = invoke(lam, name)

    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    body = json.loads(response["Body"])
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert body["request_id"] == headers["x-amzn-requestid"]
    assert headers["content-type"] == "application/json"


def test_a_second_invoke_is_served_warm_by_the_same_sandbox(lam: object) -> None:
    name = create_function(lam, IDENTITY)

    first = json.loads(invoke(lam, name)["Body"])
    second = invoke(lam, name, LogType="Tail")

    assert json.loads(second["Body"])["sandbox"] == first["sandbox"]
    assert json.loads(second["Body"])["calls"] == 2
    assert "Init Duration" not in log_of(second)


def test_concurrent_invokes_each_get_a_sandbox_and_none_fails(lam: object) -> None:
    name = create_function(lam, SLOW_IDENTITY)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: invoke(lam, name), range(4)))

    assert all("FunctionError" not in r for r in results)
    sandboxes = {json.loads(r["Body"])["sandbox"] for r in results}
    assert len(sandboxes) == 4


def test_sandboxes_are_never_shared_between_functions(lam: object) -> None:
    first = create_function(lam, IDENTITY)
    second = create_function(lam, IDENTITY)

    one = json.loads(invoke(lam, first)["Body"])
    two = json.loads(invoke(lam, second)["Body"])

    assert one["sandbox"] != two["sandbox"]
    assert two["calls"] == 1


def test_tail_returns_start_end_and_report_lines_as_lambda_writes_them(lam: object) -> None:
    name = create_function(lam, "def handler(e, c):\n    print('from the handler')\n")

    response = invoke(lam, name, LogType="Tail")

    lines = log_of(response).splitlines()
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert f"START RequestId: {request_id} Version: $LATEST" in lines
    assert "from the handler" in lines
    assert f"END RequestId: {request_id}" in lines
    report = next(line for line in lines if line.startswith("REPORT"))
    fields = report.split("\t")
    assert fields[0] == f"REPORT RequestId: {request_id}"
    assert fields[1].startswith("Duration: ") and fields[1].endswith(" ms")
    assert fields[2].startswith("Billed Duration: ")
    assert fields[3] == "Memory Size: 128 MB"
    assert fields[4].startswith("Max Memory Used: ")
    assert fields[5].startswith("Init Duration: ")
    assert report.endswith("\t")


def test_a_big_log_is_cut_to_its_last_4_kb(lam: object) -> None:
    name = create_function(lam, "def handler(e, c):\n    print('x' * 10000)\n")

    response = invoke(lam, name, LogType="Tail")

    assert len(base64.b64decode(response["LogResult"])) == 4096
    assert log_of(response).rstrip().splitlines()[-1].startswith("REPORT")


def test_an_event_invoke_answers_202_and_runs_in_the_background(
    lam: object, server: Server
) -> None:
    name = create_function(lam, "def handler(e, c):\n    print('event marker', e['marker'])\n")

    response = invoke(lam, name, json.dumps({"marker": "m-4711"}), InvocationType="Event")

    assert response["StatusCode"] == 202
    assert response["Body"] == b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "event marker m-4711" in server.function_log(name):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the event never ran")


def test_a_dry_run_checks_and_runs_nothing(lam: object, server: Server) -> None:
    name = create_function(lam, IDENTITY)

    response = invoke(lam, name, InvocationType="DryRun")

    assert response["StatusCode"] == 204
    assert server.state()["sandboxes"]["per_function"].get(key(name)) is None


def test_a_function_exception_is_lambdas_error_document(lam: object) -> None:
    name = create_function(lam, "def handler(e, c):\n    raise ValueError('boom')\n")

    response = invoke(lam, name)

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Body"])
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert error == {
        "errorMessage": "boom",
        "errorType": "ValueError",
        "requestId": request_id,
        "stackTrace": [
            "  File \"/var/task/index.py\", line 2, in handler\n    raise ValueError('boom')\n"
        ],
    }


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {"index.py": "import nosuchmodule\n"},
            "index.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'index': No module named 'nosuchmodule'",
        ),
        (
            {"index.py": "x = 1\n"},
            "index.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'index'",
        ),
        (
            {"index.py": "def handler(e, c):\n    return 1\n"},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
        ),
    ],
)
def test_init_problems_answer_with_the_runtimes_error_types(
    lam: object, files: dict, handler: str, error_type: str, message: str
) -> None:
    name = create_function(lam, files, handler=handler)

    response = invoke(lam, name)

    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Body"])
    assert error["errorType"] == error_type
    assert error["errorMessage"] == message


def test_a_timeout_kills_the_sandbox_and_the_next_invoke_works(lam: object) -> None:
    code = (
        "import time\ndef handler(e, c):\n"
        "    if e.get('sleep'):\n        time.sleep(30)\n    return 'ok'\n"
    )
    name = create_function(lam, code, Timeout=1)

    timed_out = invoke(lam, name, json.dumps({"sleep": True}), LogType="Tail")
    after = invoke(lam, name, LogType="Tail")

    request_id = timed_out["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert timed_out["FunctionError"] == "Unhandled"
    assert json.loads(timed_out["Body"]) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
    }
    assert f"{request_id} Task timed out after 1.00 seconds" in log_of(timed_out)
    assert after["Body"] == b'"ok"'
    assert "Init Duration" in log_of(after)


def test_a_runtime_that_exits_is_reported_with_its_exit_status(lam: object) -> None:
    name = create_function(lam, "import os\ndef handler(e, c):\n    os._exit(3)\n")

    response = invoke(lam, name)

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert json.loads(response["Body"]) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
    }


def test_a_result_over_6_mb_is_refused_and_the_sandbox_stays_usable(lam: object) -> None:
    code = (
        "import uuid\nSANDBOX = uuid.uuid4().hex\n"
        "def handler(e, c):\n    return 'x' * (7 * 1024 * 1024) if e.get('big') else SANDBOX\n"
    )
    name = create_function(lam, code)
    sandbox = json.loads(invoke(lam, name)["Body"])

    too_big = invoke(lam, name, json.dumps({"big": True}))
    after = invoke(lam, name)

    assert too_big["FunctionError"] == "Unhandled"
    assert json.loads(too_big["Body"]) == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        "(6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    assert json.loads(after["Body"]) == sandbox


def test_non_ascii_payloads_round_trip_byte_exactly(lam: object) -> None:
    # Since python3.12 Lambda's runtime no longer escapes non-ASCII characters in results.
    name = create_function(lam, "def handler(e, c):\n    return e\n", Runtime="python3.12")
    payload = json.dumps({"text": "héllo ✓ 😀 \u2028 Ω"}, ensure_ascii=False).encode()

    response = invoke(lam, name, payload)

    assert response["Body"] == payload


def test_older_python_runtimes_escape_non_ascii_results_as_lambda_does(lam: object) -> None:
    name = create_function(lam, "def handler(e, c):\n    return e\n", Runtime="python3.11")
    document = {"text": "héllo ✓ 😀 Ω"}

    response = invoke(lam, name, json.dumps(document, ensure_ascii=False).encode())

    assert response["Body"] == json.dumps(document).encode()


def test_a_payload_that_is_not_utf8_json_is_invalid_request_content(lam: object) -> None:
    name = create_function(lam, IDENTITY)

    with pytest.raises(ClientError) as caught:
        invoke(lam, name, b"\xff\xfe\x00")

    error = caught.value.response
    assert error["Error"]["Code"] == "InvalidRequestContentException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Message"].startswith(
        "Could not parse request body into json: Could not parse payload into json: "
    )


def test_a_payload_over_6_mb_is_request_too_large(lam: object) -> None:
    name = create_function(lam, IDENTITY)

    with pytest.raises(ClientError) as caught:
        invoke(lam, name, json.dumps("x" * (6 * 1024 * 1024)))

    error = caught.value.response
    assert error["Error"]["Code"] == "RequestEntityTooLargeException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert error["Error"]["Message"] == (
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
    )


def test_an_empty_payload_reaches_the_function_as_an_empty_object(lam: object) -> None:
    name = create_function(lam, "def handler(e, c):\n    return e\n")

    response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]

    assert response["Payload"].read() == b"{}"


def test_the_context_and_environment_are_lambdas(lam: object) -> None:
    code = """
import os
def handler(event, context):
    keys = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT",
            "_HANDLER", "AWS_LAMBDA_LOG_GROUP_NAME", "MY_SETTING", "_X_AMZN_TRACE_ID"]
    return {
        "env": {k: os.environ.get(k) for k in keys},
        "name": context.function_name,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "custom": context.client_context.custom if context.client_context else None,
        "cwd": os.getcwd(),
    }
"""
    name = create_function(
        lam, code, MemorySize=256, Timeout=7, Environment={"Variables": {"MY_SETTING": "on"}}
    )
    client_context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()

    body = json.loads(invoke(lam, name, ClientContext=client_context)["Body"])

    assert body["env"]["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert body["env"]["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert body["env"]["AWS_REGION"] == "us-east-1"
    assert body["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert body["env"]["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{PYTHON_RUNTIME}"
    assert body["env"]["LAMBDA_TASK_ROOT"] == "/var/task"
    assert body["env"]["_HANDLER"] == "index.handler"
    assert body["env"]["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert body["env"]["MY_SETTING"] == "on"
    assert body["env"]["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert body["name"] == name
    assert body["arn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert body["memory"] == "256"
    assert 0 < body["remaining"] <= 7000
    assert body["custom"] == {"k": "v"}
    assert body["cwd"] == "/var/task"


def test_updated_code_is_what_the_next_invoke_runs(lam: object) -> None:
    name = create_function(lam, "def handler(e, c):\n    return 'old'\n")
    assert invoke(lam, name)["Body"] == b'"old"'

    from tests.conftest import make_zip

    lam.update_function_code(  # type: ignore[attr-defined]
        FunctionName=name, ZipFile=make_zip({"index.py": "def handler(e, c):\n    return 'new'\n"})
    )
    lam.get_waiter("function_updated_v2").wait(  # type: ignore[attr-defined]
        FunctionName=name, WaiterConfig={"Delay": 1}
    )

    assert invoke(lam, name)["Body"] == b'"new"'


def test_a_deleted_functions_sandboxes_are_destroyed(lam: object, server: Server) -> None:
    name = create_function(lam, IDENTITY)
    invoke(lam, name)
    assert server.state()["sandboxes"]["per_function"][key(name)] == 1

    lam.delete_function(FunctionName=name)  # type: ignore[attr-defined]

    assert key(name) not in server.state()["sandboxes"]["per_function"]


def test_reserved_concurrency_of_zero_throttles_with_lambdas_reason(lam: object) -> None:
    name = create_function(lam, IDENTITY)
    lam.put_function_concurrency(  # type: ignore[attr-defined]
        FunctionName=name, ReservedConcurrentExecutions=0
    )

    with pytest.raises(ClientError) as caught:
        invoke(lam, name)

    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"] == {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."}
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert error["Type"] == "User"


def test_reserved_concurrency_caps_concurrent_invokes(lam: object) -> None:
    name = create_function(lam, SLOW_IDENTITY)
    lam.put_function_concurrency(  # type: ignore[attr-defined]
        FunctionName=name, ReservedConcurrentExecutions=1
    )

    def attempt(_: int) -> str:
        try:
            invoke(lam, name)
            return "ok"
        except ClientError as exc:
            return str(exc.response.get("Reason"))

    with ThreadPoolExecutor(3) as pool:
        outcomes = sorted(pool.map(attempt, range(3)))

    assert "ok" in outcomes
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in outcomes


@pytest.mark.parametrize("runtime", [f"python3.{m}" for m in range(8, 15)])
def test_each_python_runtime_runs_its_own_interpreter_or_is_refused_clearly(
    lam: object, runtime: str
) -> None:
    code = "import sys\ndef handler(e, c):\n    return '%d.%d' % sys.version_info[:2]\n"

    try:
        name = create_function(lam, code, Runtime=runtime)
    except ClientError as exc:
        # A runtime this host has no interpreter for is refused, naming those it has.
        message = exc.response["Error"]["Message"]
        prefix = f"The runtime {runtime} is valid for AWS Lambda but is not installed"
        assert message.startswith(prefix), message
        installed = message.split("Runtimes installed here: ")[1].rstrip(".").split(", ")
        assert runtime not in installed
        assert PYTHON_RUNTIME in installed
        return

    assert json.loads(invoke(lam, name)["Body"]) == runtime.removeprefix("python")


def test_health_answers_once_every_worker_has_joined(server: Server) -> None:
    health = requests.get(f"{server.url}/_lamina/health", timeout=5)

    assert health.status_code == 200
    assert set(health.json()["workers"].values()) == {"healthy"}
    assert len(health.json()["workers"]) == 2


def test_logs_are_kept_in_the_functions_log_group(lam: object, server: Server) -> None:
    name = create_function(lam, "def handler(e, c):\n    print('kept in the store')\n")

    invoke(lam, name)

    assert "kept in the store" in server.function_log(name)
