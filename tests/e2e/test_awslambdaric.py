"""AWS's own Python runtime client, vendored in a zip, runs on Lamina unchanged; and Lamina's
Python runtime answers exactly as it does, checked side by side on the same code."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

import pytest

from tests.conftest import PYTHON_RUNTIME, ROLE, Server, unique_name
from tests.e2e.vendored import AWSLAMBDARIC, sandbox_python_version, vendored, zip_tree

# The bootstrap of the awslambdaric README, with the handler Lambda was given.
RIC_BOOTSTRAP = '#!/bin/sh\nexec python3 -m awslambdaric "$_HANDLER"\n'

APP = """
import logging, os, time
logger = logging.getLogger()
logger.setLevel(logging.INFO)

def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    logger.info("info from %s", "logging")
    logger.warning("two\\nlines")
    print("printed")
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "log_group": context.log_group_name,
        "remaining_decreased": context.get_remaining_time_in_millis() < first,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }

def fails(event, context):
    raise ValueError("bad value")

def unmarshalable(event, context):
    return {"it": object}
"""

SYNTAX_ERROR = "def handler(event, context):\n    return (\n"
INIT_RAISES = "raise RuntimeError('at import')\ndef handler(event, context):\n    return 1\n"


@pytest.fixture(scope="module")
def ric_tree() -> Iterator[object]:
    if sandbox_python_version() != PYTHON_RUNTIME.removeprefix("python"):
        pytest.skip("side by side needs the sandbox's python3 to be the test runtime's version")
    yield vendored(AWSLAMBDARIC)


def deploy(lam: object, tree: object, code: dict[str, str], handler: str, ric: bool) -> str:
    """The same code, under awslambdaric (provided.al2023) or Lamina's Python runtime."""
    name = unique_name("ric" if ric else "builtin")
    files = {path: (text, 0o644) for path, text in code.items()}
    if ric:
        files["bootstrap"] = (RIC_BOOTSTRAP, 0o755)
    package = zip_tree(tree if ric else None, files)  # type: ignore[arg-type]
    lam.create_function(  # type: ignore[attr-defined]
        FunctionName=name,
        Runtime="provided.al2023" if ric else PYTHON_RUNTIME,
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": package},
        Timeout=10,
    )
    lam.get_waiter("function_active_v2").wait(  # type: ignore[attr-defined]
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    return name


def invoke(lam: object, name: str, event: object = None) -> dict:
    response = lam.invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail"
    )
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    return {
        "request_id": request_id,
        "error": response.get("FunctionError"),
        "body": json.loads(response["Payload"].read()),
        "log": base64.b64decode(response["LogResult"]).decode(),
    }


def normalised(text: str, request_id: str, name: str) -> str:
    text = text.replace(request_id, "<request id>").replace(name, "<name>")
    text = re.sub(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16}", "<trace>", text)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<time>", text)


def both(lam: object, tree: object, code: dict[str, str], handler: str) -> list[dict]:
    """Invoke the same code under both runtimes; bodies and logs with per-run values masked."""
    results = []
    for ric in (True, False):
        name = deploy(lam, tree, code, handler, ric)
        result = invoke(lam, name, {"k": "v"})
        result["body"] = json.loads(
            normalised(json.dumps(result["body"]), result["request_id"], name)
        )
        result["log"] = normalised(result["log"], result["request_id"], name)
        results.append(result)
    return results


def function_lines(log: str) -> list[str]:
    """The lines the function and its runtime wrote, without the platform's own lines."""
    platform = ("START ", "END ", "REPORT ", "INIT_START ")
    return [line for line in log.splitlines() if not line.startswith(platform)]


def test_a_vendored_awslambdaric_function_runs_unchanged(lam: object, ric_tree: object) -> None:
    name = deploy(lam, ric_tree, {"index.py": APP}, "index.handler", ric=True)

    first = invoke(lam, name, {"n": 1})
    second = invoke(lam, name, {"n": 2})

    assert first["error"] is None
    body = second["body"]
    assert body["event"] == {"n": 2}
    assert body["request_id"] == second["request_id"]
    assert (body["function_name"], body["memory"]) == (name, "128")
    assert body["arn"].endswith(f":function:{name}")
    assert body["log_group"] == f"/aws/lambda/{name}"
    assert body["remaining_decreased"] is True
    assert body["trace"].startswith("Root=1-")
    assert body["trace"] != first["body"]["trace"]
    assert (
        "[INFO]\t" in second["log"]
        and f"\t{second['request_id']}\tinfo from logging" in (second["log"])
    )
    assert "printed" in second["log"]


def test_awslambdaric_reports_a_handler_exception(lam: object, ric_tree: object) -> None:
    name = deploy(lam, ric_tree, {"index.py": APP}, "index.fails", ric=True)

    response = invoke(lam, name)

    assert response["error"] == "Unhandled"
    assert response["body"]["errorType"] == "ValueError"
    assert response["body"]["errorMessage"] == "bad value"
    assert "[ERROR] ValueError: bad value" in response["log"]


# --- Side by side: Lamina's Python runtime answers as awslambdaric does ------------------------


@pytest.mark.parametrize(
    ("code", "handler"),
    [
        ({"index.py": APP}, "missing_module.handler"),
        ({"index.py": APP}, "index.not_there"),
        ({"index.py": APP}, "nodots"),
        ({"index.py": SYNTAX_ERROR}, "index.handler"),
        ({"index.py": APP}, "index.unmarshalable"),
        ({"index.py": APP}, "index.fails"),
        ({"index.py": INIT_RAISES}, "index.handler"),
    ],
    ids=[
        "import-error",
        "missing-handler",
        "malformed-handler",
        "syntax-error",
        "unmarshalable-result",
        "handler-exception",
        "init-exception",
    ],
)
def test_the_python_runtime_gives_the_same_error_document_as_awslambdaric(
    lam: object, ric_tree: object, code: dict[str, str], handler: str
) -> None:
    ric, builtin = both(lam, ric_tree, code, handler)

    assert builtin["error"] == ric["error"] == "Unhandled"
    assert builtin["body"] == ric["body"]
    assert function_lines(builtin["log"]) == function_lines(ric["log"])


def test_the_python_runtime_logs_like_awslambdaric(lam: object, ric_tree: object) -> None:
    ric, builtin = both(lam, ric_tree, {"index.py": APP}, "index.handler")

    assert builtin["body"] == ric["body"]
    expected = [
        "[INFO]\t<time>\t<request id>\tinfo from logging",
        "[WARNING]\t<time>\t<request id>\ttwo",
        "lines",
        "printed",
    ]
    assert function_lines(ric["log"]) == expected
    assert function_lines(builtin["log"]) == expected


def test_a_multi_line_record_is_one_event_under_both_runtimes(
    lam: object, server: Server, ric_tree: object
) -> None:
    for ric in (True, False):
        name = deploy(lam, ric_tree, {"index.py": APP}, "index.handler", ric)
        invoke(lam, name, {"k": "v"})

        messages = server.function_log_events(name)

        (warning,) = [m for m in messages if m.startswith("[WARNING]")]
        assert warning.endswith("\ttwo\nlines")
        assert "printed" in messages


def test_the_python_runtime_logs_an_error_like_awslambdaric(lam: object, ric_tree: object) -> None:
    ric, builtin = both(lam, ric_tree, {"index.py": APP}, "index.fails")

    assert function_lines(builtin["log"]) == function_lines(ric["log"])
