"""Lamina answers Invoke as real AWS Lambda answered the invokes of LocalStack's parity tests.

Each test runs, through boto3, the function and the invoke that a recorded test ran against AWS
(recordings in /work/shared/reference/aws-recorded/test_lambda.snapshot.json) and compares
Lamina's answer with AWS's the way test_recorded_shapes.py does for the control plane: the same
keys and value types, the same status codes, the same fixed values, and the same messages once
the recorded placeholders are filled in (see `tests/e2e/recorded.py`).

The handlers are written as the recordings imply them: where a recorded stack trace names the
handler's file and line, the function here has that file and that line, so the trace must match.
The request id AWS put in a payload or a log is bound to the request id of Lamina's answer.
"""

from __future__ import annotations

import base64
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, key, unique_name
from tests.e2e.recorded import (
    Bindings,
    as_recorded_invoke,
    log_mismatches,
    mismatches,
    recording,
    renamed,
    shape,
)

ECHO = (
    "import json\n\n\n"
    "def handler(event, context):\n    print(json.dumps(event))\n    return event\n"
)
# What AWS says of a payload it cannot parse: a fixed prefix, the parser's complaint, and where.
INVALID_PAYLOAD_MESSAGE = re.compile(
    re.escape("Could not parse request body into json: Could not parse payload into json: ")
    + r".+\n at \[Source: REDACTED \(`StreamReadFeature\.INCLUDE_SOURCE_IN_LOCATION` "
    r"disabled\); line: \d+, column: \d+\]",
    re.DOTALL,
)


def recorded(test: str, label: str) -> Any:
    """AWS's answer at step `label` of LocalStack's test_lambda.py test `test`."""
    return recording(test, label, file="test_lambda")


def invoke(lam: Any, name: str, payload: bytes | str = b"{}", **params: Any) -> dict[str, Any]:
    """Lamina's answer to one Invoke, in the form the recordings hold, refused or not."""
    try:
        return as_recorded_invoke(lam.invoke(FunctionName=name, Payload=payload, **params))
    except ClientError as exc:
        return exc.response


def request_id(response: dict[str, Any]) -> str:
    return response["ResponseMetadata"]["RequestId"]


def bound(response: dict[str, Any], *placeholders: str) -> Bindings:
    """Bindings in which each placeholder stands for the request id of `response`."""
    bindings = Bindings()
    for placeholder in placeholders:
        bindings.bind(placeholder, request_id(response))
    return bindings


def assert_answers_as_recorded(
    response: dict[str, Any], aws: Any, bindings: Bindings | None = None
) -> None:
    assert shape(response) == shape(aws)
    assert mismatches(aws, response, bindings) == []


def tail_lines(response: dict[str, Any]) -> list[str]:
    return base64.b64decode(response["LogResult"]).decode().splitlines(keepends=True)


# Results


def test_a_sync_invoke_answers_200_the_executed_version_and_the_result_as_aws_did(
    lam: Any,
) -> None:
    aws = recorded(
        "TestLambdaFeatures::test_invocation_type_request_response[python3.10]", "invoke-result"
    )
    name = create_function(lam, ECHO)

    response = invoke(lam, name, b"{}")

    assert_answers_as_recorded(response, aws)


def test_a_handler_that_returns_nothing_answers_null_as_aws_did(lam: Any) -> None:
    aws = recorded(
        "TestLambdaFeatures::test_invocation_type_no_return_payload[python-RequestResponse]",
        "invoke-result",
    )
    name = create_function(lam, "def handler(event, context):\n    pass\n")

    response = invoke(lam, name)

    assert_answers_as_recorded(response, aws)


def test_an_event_invoke_is_accepted_with_202_and_an_empty_payload_as_aws_did(lam: Any) -> None:
    aws = recorded("TestLambdaFeatures::test_invocation_type_event[python3.10]", "invoke-result")
    name = create_function(lam, ECHO)

    response = invoke(lam, name, b"{}", InvocationType="Event")

    assert_answers_as_recorded(response, aws)


def test_a_dry_run_is_answered_204_with_an_empty_payload_as_aws_did(lam: Any) -> None:
    aws = recorded("TestLambdaFeatures::test_invocation_type_dry_run[python3.10]", "invoke-result")
    name = create_function(lam, ECHO)

    response = invoke(lam, name, b"{}", InvocationType="DryRun")

    assert_answers_as_recorded(response, aws)


# Function errors


def test_an_exception_in_the_handler_is_answered_with_the_error_document_aws_sent(
    lam: Any,
) -> None:
    # The recorded trace names /var/task/lambda_handler_error.py, line 2, and its source line.
    aws = recorded("TestLambdaErrors::test_lambda_handler_error", "invocation_error")
    code = 'def handler(event, context):\n    raise Exception("Handler fails")\n'
    name = create_function(
        lam, {"lambda_handler_error.py": code}, handler="lambda_handler_error.handler"
    )

    response = invoke(lam, name)

    assert_answers_as_recorded(response, aws, bound(response, "<uuid>"))


def test_an_exception_while_the_module_loads_is_answered_with_the_init_error_document(
    lam: Any,
) -> None:
    # AWS ran python3.13: the importlib frames above the module's own differ in path and line
    # numbers from one Python to another, the functions they name and the last frame do not.
    aws = recorded("TestLambdaErrors::test_lambda_runtime_error", "invocation_error")
    code = 'raise Exception("Runtime startup fails")\n\n\ndef handler(event, context):\n    pass\n'
    name = create_function(
        lam, {"lambda_runtime_error.py": code}, handler="lambda_runtime_error.handler"
    )

    response = invoke(lam, name)

    payload = response["Payload"]
    assert isinstance(payload, dict), payload
    trace = payload.get("stackTrace") or [None]
    recorded_trace = aws["Payload"]["stackTrace"]
    last_frame_only = {**response, "Payload": {**payload, "stackTrace": trace[-1:]}}
    aws_last_frame_only = {**aws, "Payload": {**aws["Payload"], "stackTrace": recorded_trace[-1:]}}
    assert shape(last_frame_only) == shape(aws_last_frame_only)
    assert mismatches(aws_last_frame_only, last_frame_only) == []
    assert [frame_function(f) for f in trace] == [frame_function(f) for f in recorded_trace]


def frame_function(frame: object) -> str | None:
    """The function a `  File "...", line N, in F\\n` frame of a Python trace names."""
    match = re.match(r'  File "[^"]+", line \d+, in (\S+)\n', str(frame))
    return match.group(1) if match else None


EXITS = [
    # sys.exit(0) inside the handler, during an invoke.
    (
        "test_lambda_handler_exit",
        "import sys\n\n\ndef handler(event, context):\n    sys.exit(0)\n",
    ),
    # sys.exit(0) while the module loads, before the runtime asked for an event.
    ("test_lambda_runtime_exit", "import sys\n\nsys.exit(0)\n"),
    # AWS could not start the runtime's exec wrapper, which exits 127 as a shell does; the
    # runtime here exits 127 itself while the module loads.
    ("test_lambda_runtime_wrapper_not_found", "import os\n\nos._exit(127)\n"),
]


@pytest.mark.parametrize(("test", "code"), EXITS, ids=[test for test, _ in EXITS])
def test_a_runtime_that_exits_is_answered_with_runtime_exit_error_as_aws_did(
    lam: Any, test: str, code: str
) -> None:
    aws = recorded(f"TestLambdaErrors::{test}", "invocation_error")
    name = create_function(lam, {"lambda_exit.py": code}, handler="lambda_exit.handler")

    response = invoke(lam, name)

    assert_answers_as_recorded(response, aws, bound(response, "<uuid>"))


def test_a_handler_that_outlives_its_timeout_is_answered_sandbox_timedout_as_aws_did(
    lam: Any,
) -> None:
    aws = recorded("TestLambdaBehavior::test_lambda_invoke_with_timeout", "invoke-result")
    code = "import time\n\n\ndef handler(event, context):\n    time.sleep(event['wait'])\n"
    name = create_function(lam, code, Timeout=1)

    response = invoke(lam, name, json.dumps({"wait": 2}))

    assert_answers_as_recorded(response, aws, bound(response, "<timeout_error_msg>"))


def test_a_result_over_6_mb_is_answered_response_size_too_large_twice_as_aws_did(
    lam: Any,
) -> None:
    test = "TestLambdaBaseFeatures::test_lambda_too_large_response"
    code = "def handler(event, ctx):\n    return 'a' * event['bytenum']\n"
    name = create_function(lam, code)
    payload = json.dumps({"bytenum": 7 * 1024 * 1024})

    first = invoke(lam, name, payload)
    second = invoke(lam, name, payload)

    assert_answers_as_recorded(first, recorded(test, "invoke_result"))
    assert_answers_as_recorded(second, recorded(test, "invoke_result_2"))


# Logs


def test_a_tail_invoke_returns_start_the_output_end_and_report_lines_as_aws_wrote_them(
    lam: Any,
) -> None:
    test = "TestLambdaFeatures::test_invocation_with_logs[python3.10]"
    name = create_function(lam, ECHO)

    response = invoke(lam, name, b"{}", LogType="Tail")

    # The recording put the name of the key in place of the LogResult: only its type compares.
    aws = recorded(test, "invoke")
    assert shape(response) == shape(aws)
    assert mismatches(aws, response, chosen={"LogResult"}) == []
    lines = recorded(test, "logs")["logs"]
    assert log_mismatches(lines, tail_lines(response), bound(response, "<request-id>")) == []


def test_a_logging_module_record_carries_level_time_and_request_id_as_aws_wrote_it(
    lam: Any,
) -> None:
    test = "TestRequestIdHandling::test_request_id_invoke"
    code = (
        "import logging\n\nlogging.basicConfig(level=logging.INFO)\n"
        "LOGGER = logging.getLogger(__name__)\nLOGGER.setLevel(logging.INFO)\n\n\n"
        "def handler(event, context):\n    LOGGER.info('RequestId log message')\n"
        "    return context.aws_request_id\n"
    )
    name = create_function(lam, code)

    response = invoke(lam, name, LogType="Tail")

    aws = recorded(test, "invoke_result")
    without_log = {k: v for k, v in response.items() if k != "LogResult"}
    assert_answers_as_recorded(without_log, aws, bound(response, "<request-id>"))
    # The recorded lines are CloudWatch events: no line break, and no tab after REPORT's last
    # field. The Tail lines are compared with that trailing whitespace removed.
    lines = [line.rstrip() for line in tail_lines(response)]
    recorded_lines = recorded(test, "log_entries")["logs"]
    assert log_mismatches(recorded_lines, lines, bound(response, "<request-id>")) == []


# Refusals


def test_reserved_concurrency_of_zero_refuses_a_sync_invoke_with_aws_429_and_accepts_an_event(
    lam: Any,
) -> None:
    test = "TestLambdaConcurrency::test_reserved_concurrency"
    name = create_function(lam, ECHO, Timeout=20)
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)

    sync = invoke(lam, name)
    event = invoke(lam, name, InvocationType="Event")

    assert_answers_as_recorded(put, recorded(test, "put_reserved"))
    assert_answers_as_recorded(sync, recorded(test, "exc_no_cap_requestresponse"))
    assert_answers_as_recorded(event, recorded(test, "invoke_result"))


def test_an_invoke_beyond_a_reservation_of_one_busy_invoke_is_refused_as_aws_refused_it(
    lam: Any, server: Server
) -> None:
    test = "TestLambdaConcurrency::test_reserved_concurrency_async_queue"
    code = "import time\n\n\ndef handler(event, context):\n    time.sleep(event.get('hold', 0))\n"
    name = create_function(lam, code, Timeout=30)
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)

    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(invoke, lam, name, json.dumps({"hold": 3}))
        deadline = time.monotonic() + 30
        while server.state()["counting"]["in_flight"].get(key(name)) != 1:
            assert time.monotonic() < deadline, "the first invoke never started"
            assert not busy.done(), busy.result()
            time.sleep(0.02)
        refused = invoke(lam, name)
        finished = busy.result()

    assert_answers_as_recorded(put, recorded(test, "put_fn_concurrency"))
    assert_answers_as_recorded(refused, recorded(test, "too_many_requests_exc"))
    assert finished["StatusCode"] == 200 and "FunctionError" not in finished


PAYLOAD_ENCODING = "TestLambdaErrors::test_lambda_invoke_payload_encoding_error"
# The payloads are the bytes AWS CLI v2 sent for an inline --payload without
# --cli-binary-format (it took the JSON text for base64), as the recorded test ids quote them.
BAD_PAYLOADS = [
    (f"{PAYLOAD_ENCODING}[body-n\\x87r\\x9e\\xe9\\xb5\\xd7I\\xee\\x9bmt]",
     "invoke_function_invalid_payload_body", b"n\x87r\x9e\xe9\xb5\xd7I\xee\x9bmt"),
    (f"{PAYLOAD_ENCODING}[message-\\x99\\xeb,j\\x07\\xa1zYh]",
     "invoke_function_invalid_payload_message", b"\x99\xeb,j\x07\xa1zYh"),
]  # fmt: skip


@pytest.mark.parametrize(("test", "label", "payload"), BAD_PAYLOADS, ids=["body", "message"])
def test_a_payload_that_is_not_json_is_refused_400_invalid_request_content_as_aws_did(
    lam: Any, test: str, label: str, payload: bytes
) -> None:
    aws = recorded(test, label)
    name = create_function(lam, ECHO)

    response = invoke(lam, name, payload)

    assert shape(response) == shape(aws)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == aws["Error"]["Code"] == "InvalidRequestContentException"
    assert response["Type"] == aws["Type"] == "User"
    assert INVALID_PAYLOAD_MESSAGE.fullmatch(aws["message"])
    assert INVALID_PAYLOAD_MESSAGE.fullmatch(response["message"]), response["message"]
    assert response["Error"]["Message"] == response["message"]


@pytest.mark.parametrize(("test", "label", "payload"), BAD_PAYLOADS, ids=["body", "message"])
def test_the_parsers_complaint_about_a_payload_is_word_for_word_what_aws_said(
    lam: Any, test: str, label: str, payload: bytes
) -> None:
    aws = recorded(test, label)
    name = create_function(lam, ECHO)

    response = invoke(lam, name, payload)

    assert mismatches(aws, response) == []


def test_invoking_an_unknown_function_is_not_found_naming_its_latest_arn_as_aws_did(
    lam: Any,
) -> None:
    name = unique_name("doesnotexist")
    aws = renamed(
        recorded("TestLambdaFeatures::test_invoke_exceptions", "invoke_function_doesnotexist"),
        "function:doesnotexist:",
        f"function:{name}:",
    )

    response = invoke(lam, name)

    assert_answers_as_recorded(response, aws)
