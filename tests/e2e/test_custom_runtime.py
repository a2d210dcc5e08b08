"""Custom runtimes (provided.al2023, provided.al2) and the Runtime API they speak over HTTP.

The runtimes here are the examples of docs/ (bash over /dev/tcp, Python over urllib) and a
probe written with http.client, which calls every endpoint of the Runtime API the wrong way
and reports what it heard.
"""

from __future__ import annotations

import base64
import json
import platform

import pytest

from tests.conftest import ROLE, ROOT, create_function, unique_name
from tests.e2e.vendored import zip_tree

EXAMPLES = ROOT / "docs" / "examples"

PROBE = r"""#!/usr/bin/env python3
import http.client, json, os, sys

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")


def call(method, path, body=b"", headers=None):
    connection = http.client.HTTPConnection(HOST, int(PORT))
    connection.request(method, "/2018-06-01/runtime" + path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return {"status": response.status, "body": json.loads(data) if data else None,
            "headers": {k.lower(): v for k, v in response.getheaders()}}


def respond(request_id, document):
    return call("POST", f"/invocation/{request_id}/response", json.dumps(document).encode())


if os.environ.get("PROBE_INIT") == "answer-before-next":
    early = call("POST", "/invocation/any-id/response", b"{}")
    print("EARLY " + json.dumps(early["body"]), flush=True)
if os.environ.get("PROBE_INIT") == "init-error":
    call("POST", "/init/error", json.dumps({"errorMessage": "no config", "errorType":
         "Custom.ConfigMissing", "stackTrace": []}).encode(),
         {"Lambda-Runtime-Function-Error-Type": "Custom.ConfigMissing"})
    sys.exit(2)
if os.environ.get("PROBE_INIT") == "exit":
    sys.exit(4)
if os.environ.get("PROBE_INIT") == "hang":
    import time
    time.sleep(3600)

heard = None
while True:
    invocation = call("GET", "/invocation/next")
    request_id = invocation["headers"]["lambda-runtime-aws-request-id"]
    case = invocation["body"].get("case")
    if case == "headers":
        respond(request_id, invocation["headers"])
    elif case == "unknown-id":
        wrong = call("POST", "/invocation/not-my-id/response", b'"wrong"')
        wrong_error = call("POST", "/invocation/not-my-id/error", b"{}")
        respond(request_id, {"response": wrong, "error": wrong_error})
    elif case == "twice":
        first = respond(request_id, "first")
        again = respond(request_id, "second")
        error_after = call("POST", f"/invocation/{request_id}/error", b"{}")
        init_error_after = call("POST", "/init/error", b"{}")
        heard = [first["status"], again["body"], error_after["status"], init_error_after["body"]]
    elif case == "too-large":
        big = call("POST", f"/invocation/{request_id}/response", b"x" * (6 * 1024 * 1024 + 101))
        heard = [big["status"], big["body"]]
    elif case == "error":
        document = {"errorMessage": "it broke", "errorType": "Custom.Broken", "stackTrace": []}
        posted = call("POST", f"/invocation/{request_id}/error", json.dumps(document).encode(),
                      {"Lambda-Runtime-Function-Error-Type": "Custom.Broken"})
        heard = [posted["status"], posted["body"]]
    elif case == "next-again":
        again = call("GET", "/invocation/next")
        respond(request_id, [again["status"], again["body"]])
    elif case == "heard":
        # What the runtime heard after it had answered, told by the next invoke.
        respond(request_id, heard)
    elif case == "environment":
        respond(request_id, dict(os.environ))
"""


def zip_with_modes(files: dict[str, tuple[str | bytes, int]]) -> bytes:
    return zip_tree(None, files)


def example_zip(directory: str) -> bytes:
    files = {}
    for path in sorted((EXAMPLES / directory).iterdir()):
        mode = 0o755 if path.name == "bootstrap" else 0o644
        files[path.name] = (path.read_bytes(), mode)
    return zip_with_modes(files)


def create_custom(
    lam: object, package: bytes, runtime: str = "provided.al2023", **extra: object
) -> str:
    name = unique_name("custom")
    lam.create_function(  # type: ignore[attr-defined]
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler=str(extra.pop("Handler", "function.handler")),
        Code={"ZipFile": package},
        **extra,
    )
    lam.get_waiter("function_active_v2").wait(  # type: ignore[attr-defined]
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


def probe_function(lam: object, **environment: str) -> str:
    package = zip_with_modes({"bootstrap": (PROBE, 0o755)})
    return create_custom(lam, package, Environment={"Variables": environment}, Timeout=10)


def invoke(lam: object, name: str, event: object = None, **extra: object) -> dict:
    response = lam.invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail", **extra
    )
    response["Body"] = response.pop("Payload").read()
    response["Log"] = base64.b64decode(response.get("LogResult", "")).decode()
    response["RequestId"] = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    return response


def heard(lam: object, name: str) -> object:
    return json.loads(invoke(lam, name, {"case": "heard"})["Body"])


def logged(response: dict, marker: str) -> object:
    line = next(line for line in response["Log"].splitlines() if line.startswith(marker + " "))
    return json.loads(line.removeprefix(marker + " "))


# --- The examples of docs/ ---------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["provided.al2023", "provided.al2"])
def test_the_bash_example_runtime_answers_invokes_over_http(lam: object, runtime: str) -> None:
    name = create_custom(lam, example_zip("bash-runtime"), runtime)

    first = invoke(lam, name, {"n": 1})
    second = invoke(lam, name, {"n": 2})

    assert json.loads(first["Body"]) == {"echo": {"n": 1}}
    assert json.loads(second["Body"]) == {"echo": {"n": 2}}
    assert "FunctionError" not in second
    assert 'received: {"n": 2}' in second["Log"]
    assert "Init Duration" in first["Log"] and "Init Duration" not in second["Log"]


def test_the_bash_example_runtime_reports_a_failed_handler_as_a_function_error(
    lam: object,
) -> None:
    name = create_custom(lam, example_zip("bash-runtime"))

    failed = invoke(lam, name, {"fail": True})
    after = invoke(lam, name, {"n": 3})

    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Body"]) == {
        "errorType": "Function.Failed",
        "errorMessage": "The handler exited with status 3",
        "stackTrace": [],
    }
    assert json.loads(after["Body"]) == {"echo": {"n": 3}}


def test_the_python_example_runtime_answers_and_reports_errors(lam: object) -> None:
    name = create_custom(lam, example_zip("python-runtime"))

    answered = invoke(lam, name, {"n": 1})
    failed = invoke(lam, name, {"fail": True})

    body = json.loads(answered["Body"])
    assert body == {"echo": {"n": 1}, "request_id": answered["RequestId"]}
    assert "deadline " in answered["Log"]
    error = json.loads(failed["Body"])
    assert failed["FunctionError"] == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "asked to fail")
    assert 'raise ValueError("asked to fail")' in "".join(error["stackTrace"])


def test_a_custom_runtime_gets_lambdas_environment_without_an_execution_env(
    lam: object,
) -> None:
    name = probe_function(lam, GREETING="hi")

    environment = json.loads(invoke(lam, name, {"case": "environment"})["Body"])

    assert environment["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001"
    assert "AWS_EXECUTION_ENV" not in environment
    assert "LAMINA_RUNTIME_SOCKET" not in environment
    assert environment["_HANDLER"] == "function.handler"
    assert environment["LAMBDA_TASK_ROOT"] == "/var/task"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert environment["AWS_LAMBDA_LOG_GROUP_NAME"] == f"/aws/lambda/{name}"
    assert environment["GREETING"] == "hi"


def test_a_python_runtime_sandbox_also_serves_the_runtime_api_on_its_loopback(
    lam: object,
) -> None:
    code = (
        "import json, os, urllib.error, urllib.request\n"
        "def handler(event, context):\n"
        "    api = os.environ['AWS_LAMBDA_RUNTIME_API']\n"
        "    url = f'http://{api}/2018-06-01/runtime/invocation/next'\n"
        "    try:\n"
        "        urllib.request.urlopen(url, timeout=5)\n"
        "    except urllib.error.HTTPError as error:\n"
        "        return [api, error.code, json.loads(error.read())['errorType']]\n"
    )
    name = create_function(lam, code)

    response = invoke(lam, name)

    # The runtime holds the invocation, so a second `next` is refused: the API answered.
    assert json.loads(response["Body"]) == ["127.0.0.1:9001", 403, "InvalidStateTransition"]


def test_without_network_the_sandbox_has_its_loopback_and_nothing_else(lam: object) -> None:
    code = (
        "import socket\n"
        "def handler(event, context):\n"
        "    interfaces = sorted(name for _, name in socket.if_nameindex())\n"
        "    try:\n"
        "        socket.create_connection(('192.0.2.1', 53), timeout=2)\n"
        "        outside = 'reached'\n"
        "    except OSError as error:\n"
        "        outside = type(error).__name__\n"
        "    return [interfaces, outside]\n"
    )
    name = create_function(lam, code, Tags={"lamina:network": "none"})

    interfaces, outside = json.loads(invoke(lam, name)["Body"])

    assert interfaces == ["lo"]
    assert outside != "reached"


# --- Runtime API: every endpoint and error code ----------------------------------------------


def test_next_hands_over_the_event_with_lambdas_headers_and_omits_empty_ones(
    lam: object,
) -> None:
    name = probe_function(lam)
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()

    plain = invoke(lam, name, {"case": "headers"})
    with_context = invoke(lam, name, {"case": "headers"}, ClientContext=context)

    headers = json.loads(plain["Body"])
    assert headers["lambda-runtime-aws-request-id"] == plain["RequestId"]
    assert headers["lambda-runtime-invoked-function-arn"].endswith(f":function:{name}")
    assert int(headers["lambda-runtime-deadline-ms"]) > 0
    assert headers["lambda-runtime-trace-id"].startswith("Root=1-")
    assert headers["content-type"] == "application/json"
    assert "lambda-runtime-client-context" not in headers
    assert "lambda-runtime-cognito-identity" not in headers
    assert json.loads(json.loads(with_context["Body"])["lambda-runtime-client-context"]) == {
        "custom": {"k": "v"}
    }


def test_an_answer_for_an_unknown_request_id_is_400_and_the_invoke_still_completes(
    lam: object,
) -> None:
    name = probe_function(lam)

    response = invoke(lam, name, {"case": "unknown-id"})

    heard = json.loads(response["Body"])
    invalid = {"errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"}
    assert heard["response"]["status"] == 400
    assert heard["response"]["body"] == invalid
    assert heard["error"]["status"] == 400
    assert heard["error"]["body"] == invalid
    assert "FunctionError" not in response


def test_answering_twice_is_403_and_the_first_answer_stands(lam: object) -> None:
    name = probe_function(lam)

    response = invoke(lam, name, {"case": "twice"})

    assert response["Body"] == b'"first"'
    first_status, again, error_after_status, init_error_after = heard(lam, name)
    assert first_status == 202
    assert again == {
        "errorType": "InvalidStateTransition",
        "errorMessage": "State transition from RuntimeResponseSentState to InvocationResponse "
        "failed for runtime. Error: State transition is not allowed",
    }
    assert error_after_status == 403
    assert init_error_after == {
        "errorType": "InvalidStateTransition",
        "errorMessage": "State transition from RuntimeResponseSentState to InitError "
        "failed for runtime. Error: State transition is not allowed",
    }


def test_asking_for_the_next_event_while_holding_one_is_403(lam: object) -> None:
    name = probe_function(lam)

    response = invoke(lam, name, {"case": "next-again"})

    assert json.loads(response["Body"]) == [
        403,
        {
            "errorType": "InvalidStateTransition",
            "errorMessage": "State transition from Running to Ready failed for runtime. "
            "Error: State transition is not allowed",
        },
    ]


def test_an_answer_before_any_next_is_403(lam: object) -> None:
    name = probe_function(lam, PROBE_INIT="answer-before-next")

    response = invoke(lam, name, {"case": "headers"})

    assert logged(response, "EARLY") == {
        "errorType": "InvalidStateTransition",
        "errorMessage": "State transition from Started to InvocationResponse "
        "failed for runtime. Error: State transition is not allowed",
    }
    assert "FunctionError" not in response


def test_an_answer_over_6_mb_is_413_and_the_invoke_fails_with_lambdas_size_error(
    lam: object,
) -> None:
    name = probe_function(lam)

    response = invoke(lam, name, {"case": "too-large"})
    assert heard(lam, name) == [
        413,
        {
            "errorType": "RequestEntityTooLarge",
            "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
        },
    ]
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"]) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        "(6291556 bytes).",
    }


def test_a_posted_error_is_202_and_the_invoke_answers_its_document(lam: object) -> None:
    name = probe_function(lam)

    response = invoke(lam, name, {"case": "error"})

    assert heard(lam, name) == [202, {"status": "OK"}]
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"]) == {
        "errorMessage": "it broke",
        "errorType": "Custom.Broken",
        "stackTrace": [],
    }


def test_an_init_error_is_202_and_every_invoke_answers_its_document(lam: object) -> None:
    name = probe_function(lam, PROBE_INIT="init-error")

    response = invoke(lam, name)

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"]) == {
        "errorMessage": "no config",
        "errorType": "Custom.ConfigMissing",
        "stackTrace": [],
    }


def test_a_bootstrap_that_exits_in_init_is_a_runtime_exit_error(lam: object) -> None:
    name = probe_function(lam, PROBE_INIT="exit")

    response = invoke(lam, name)

    assert json.loads(response["Body"]) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {response['RequestId']} Error: Runtime exited with error: "
        "exit status 4",
    }


def test_a_bootstrap_that_hangs_in_init_is_stopped_after_10_seconds(lam: object) -> None:
    name = probe_function(lam, PROBE_INIT="hang")

    response = invoke(lam, name)

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"]) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {response['RequestId']} Error: Init phase timed out after "
        "10.00 seconds",
    }


# --- Bad bootstraps --------------------------------------------------------------------------


def _other_machine_elf() -> bytes:
    machine = 183 if platform.machine() in ("x86_64", "AMD64") else 62
    return b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44)


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            {"function.sh": ("echo", 0o755)},
            "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]",
        ),
        (
            {"bootstrap": ("#!/bin/sh\necho hi\n", 0o644)},
            "fork/exec /var/task/bootstrap: permission denied",
        ),
        (
            {"bootstrap": (_other_machine_elf(), 0o755)},
            "fork/exec /var/task/bootstrap: exec format error",
        ),
        (
            {"bootstrap": ("#!/opt/nowhere/sh\necho hi\n", 0o755)},
            "fork/exec /var/task/bootstrap: no such file or directory",
        ),
    ],
    ids=["missing", "not-executable", "other-architecture", "missing-interpreter"],
)
def test_a_bootstrap_that_cannot_start_is_an_invalid_entrypoint(
    lam: object, files: dict[str, tuple[str | bytes, int]], reason: str
) -> None:
    name = create_custom(lam, zip_with_modes(files))

    response = invoke(lam, name)

    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"]) == {
        "errorType": "Runtime.InvalidEntrypoint",
        "errorMessage": f"RequestId: {response['RequestId']} Error: {reason}",
    }


# --- Runtimes that end as they answer ----------------------------------------------------

ONE_SHOT = r"""#!/usr/bin/env python3
import http.client, os, sys
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
connection = http.client.HTTPConnection(host, int(port))
connection.request("GET", "/2018-06-01/runtime/invocation/next")
event = connection.getresponse()
request_id, body = event.getheader("Lambda-Runtime-Aws-Request-Id"), event.read()
connection.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", body)
connection.getresponse().read()
sys.exit(0)
"""

OWN_ANSWER = """
import json, os, urllib.request
def handler(event, context):
    if event.get("own"):
        api = os.environ["AWS_LAMBDA_RUNTIME_API"]
        url = f"http://{api}/2018-06-01/runtime/invocation/{context.aws_request_id}/response"
        urllib.request.urlopen(urllib.request.Request(url, b'"answered itself"', method="POST"))
    return event
"""


def test_a_runtime_that_answers_then_exits_has_every_invoke_answered(lam: object) -> None:
    one_shot = create_custom(lam, zip_with_modes({"bootstrap": (ONE_SHOT, 0o755)}))
    bystander = create_function(lam, "def handler(event, context):\n    return event\n")

    replies = []
    for index in range(12):
        replies.append(invoke(lam, one_shot, {"n": index}))
        replies.append(invoke(lam, bystander, {"m": index}))

    assert [r.get("FunctionError") for r in replies] == [None] * 24
    assert [json.loads(r["Body"]) for r in replies[::2]] == [{"n": i} for i in range(12)]
    assert [json.loads(r["Body"]) for r in replies[1::2]] == [{"m": i} for i in range(12)]


def test_an_invoke_sent_as_the_runtime_dies_runs_in_a_new_sandbox(lam: object) -> None:
    # Lamina's runtime ends when the API refuses its own answer, which the handler gave.
    name = create_function(lam, OWN_ANSWER, Timeout=5)

    answers = []
    for index in range(10):
        answers.append(json.loads(invoke(lam, name, {"own": True})["Body"]))
        answers.append(json.loads(invoke(lam, name, {"n": index})["Body"]))

    assert answers[::2] == ["answered itself"] * 10
    assert answers[1::2] == [{"n": i} for i in range(10)]
