"""The AWS CLI (v1, from this virtualenv) drives Lamina's control plane as it drives AWS Lambda."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CREDENTIALS, PYTHON_RUNTIME, ROLE, Server, make_zip, unique_name

AWS = Path(sys.executable).parent / "aws"
ECHO = "def handler(event, context):\n    return event\n"


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with test credentials and no AWS configuration of their own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CREDENTIALS)
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )
    env.update(extra)
    return env


def aws(
    server: Server, tmp_path: Path, *args: str, endpoint_flag: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run `aws lambda ARGS` against `server`, by --endpoint-url unless told otherwise."""
    flag = ["--endpoint-url", server.url] if endpoint_flag else []
    return subprocess.run(
        [str(AWS), *flag, "--output", "json", "lambda", *args],
        env=cli_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> Any:
    """The parsed JSON output of a command that must have succeeded."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture
def zip_file(tmp_path: Path) -> Path:
    path = tmp_path / "function.zip"
    path.write_bytes(make_zip({"index.py": ECHO}))
    return path


def create(
    server: Server, tmp_path: Path, name: str, zip_file: Path, *extra: str, **options: Any
) -> subprocess.CompletedProcess[str]:
    return aws(
        server,
        tmp_path,
        "create-function",
        "--function-name", name,
        "--runtime", PYTHON_RUNTIME,
        "--role", ROLE,
        "--handler", "index.handler",
        "--zip-file", f"fileb://{zip_file}",
        *extra,
        **options,
    )  # fmt: skip


def test_the_cli_creates_a_function_from_a_zip_file_and_reads_it_back(
    server: Server, tmp_path: Path, zip_file: Path
) -> None:
    name = unique_name("cli")

    created = ok(create(server, tmp_path, name, zip_file))
    waited = aws(server, tmp_path, "wait", "function-active-v2", "--function-name", name)
    got = ok(aws(server, tmp_path, "get-function", "--function-name", name))
    configuration = ok(
        aws(server, tmp_path, "get-function-configuration", "--function-name", name)
    )

    digest = base64.b64encode(hashlib.sha256(zip_file.read_bytes()).digest()).decode()
    assert created["FunctionName"] == name
    assert created["State"] == "Pending"
    assert created["CodeSha256"] == digest
    assert created["CodeSize"] == zip_file.stat().st_size
    assert waited.returncode == 0, waited.stderr
    assert got["Configuration"]["State"] == "Active"
    assert got["Configuration"]["CodeSha256"] == digest
    assert got["Code"]["RepositoryType"] == "S3"
    assert configuration == got["Configuration"]


def test_the_cli_lists_updates_reserves_and_deletes_a_function(
    server: Server, tmp_path: Path, zip_file: Path
) -> None:
    name = unique_name("cli")
    ok(create(server, tmp_path, name, zip_file))
    ok(aws(server, tmp_path, "wait", "function-active-v2", "--function-name", name))

    listed = ok(aws(server, tmp_path, "list-functions"))
    updated = ok(
        aws(
            server,
            tmp_path,
            "update-function-configuration",
            "--function-name", name,
            "--timeout", "30",
            "--memory-size", "256",
            "--environment", "Variables={GREETING=hello}",
        )
    )  # fmt: skip
    ok(aws(server, tmp_path, "wait", "function-updated-v2", "--function-name", name))
    after_update = ok(aws(server, tmp_path, "get-function-configuration", "--function-name", name))
    reserved = ok(
        aws(
            server,
            tmp_path,
            "put-function-concurrency",
            "--function-name", name,
            "--reserved-concurrent-executions", "4",
        )
    )  # fmt: skip
    read = ok(aws(server, tmp_path, "get-function-concurrency", "--function-name", name))
    deleted = aws(server, tmp_path, "delete-function", "--function-name", name)
    gone = aws(server, tmp_path, "get-function", "--function-name", name)

    assert name in [f["FunctionName"] for f in listed["Functions"]]
    assert updated["LastUpdateStatus"] == "InProgress"
    assert (after_update["Timeout"], after_update["MemorySize"]) == (30, 256)
    assert after_update["Environment"] == {"Variables": {"GREETING": "hello"}}
    assert after_update["LastUpdateStatus"] == "Successful"
    assert reserved == {"ReservedConcurrentExecutions": 4}
    assert read == {"ReservedConcurrentExecutions": 4}
    assert deleted.returncode == 0, deleted.stderr
    assert gone.returncode != 0


def test_a_missing_function_makes_the_cli_exit_non_zero_with_the_error_code(
    server: Server, tmp_path: Path
) -> None:
    name = unique_name("cli-missing")

    result = aws(server, tmp_path, "get-function", "--function-name", name)

    assert result.returncode != 0
    assert result.stdout == ""
    assert "ResourceNotFoundException" in result.stderr
    assert f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}" in (
        result.stderr
    )


def test_a_refused_create_makes_the_cli_exit_non_zero_with_lambdas_message(
    server: Server, tmp_path: Path, zip_file: Path
) -> None:
    name = unique_name("cli-env")

    result = create(
        server, tmp_path, name, zip_file, "--environment", "Variables={AWS_REGION=eu-west-1}"
    )

    assert result.returncode != 0
    assert "InvalidParameterValueException" in result.stderr
    assert "Reserved keys used in this request: AWS_REGION" in result.stderr
    assert aws(server, tmp_path, "get-function", "--function-name", name).returncode != 0


def test_the_cli_finds_lamina_through_aws_endpoint_url_lambda(
    server: Server, tmp_path: Path, zip_file: Path
) -> None:
    name = unique_name("cli-env-endpoint")
    by_env: dict[str, Any] = {"endpoint_flag": False, "AWS_ENDPOINT_URL_LAMBDA": server.url}

    created = ok(create(server, tmp_path, name, zip_file, **by_env))
    got = ok(aws(server, tmp_path, "get-function", "--function-name", name, **by_env))
    deleted = aws(server, tmp_path, "delete-function", "--function-name", name, **by_env)
    after = aws(server, tmp_path, "get-function", "--function-name", name)

    assert created["FunctionName"] == name
    assert got["Configuration"]["FunctionArn"] == created["FunctionArn"]
    assert deleted.returncode == 0, deleted.stderr
    assert after.returncode != 0
    assert "ResourceNotFoundException" in after.stderr


# Invoke through the CLI. AWS CLI v1 sends --payload as it is written (v2 would take it for
# base64 without --cli-binary-format raw-in-base64-out), prints the response's members as JSON
# and writes the function's result into the output file it is given.

GREETER = """
def handler(event, context):
    print("greeting", event["name"])
    return {"greeting": "hello " + event["name"]}
"""
FAILING = (
    "def handler(event, context):\n    raise ValueError('no greeting for ' + event['name'])\n"
)


def active_function(server: Server, tmp_path: Path, code: str) -> str:
    """A function made by the CLI from a zip file of `code`, waited for until Active."""
    name = unique_name("cli-invoke")
    archive = tmp_path / f"{name}.zip"
    archive.write_bytes(make_zip({"index.py": code}))
    ok(create(server, tmp_path, name, archive))
    ok(aws(server, tmp_path, "wait", "function-active-v2", "--function-name", name))
    return name


def cli_invoke(
    server: Server, tmp_path: Path, name: str, payload: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run `aws lambda invoke` with `payload`; its result and the output file it writes."""
    outfile = tmp_path / f"{name}-out.json"
    result = aws(
        server,
        tmp_path,
        "invoke",
        "--function-name", name,
        "--payload", payload,
        *extra,
        str(outfile),
    )  # fmt: skip
    return result, outfile


def test_the_cli_invokes_a_function_and_writes_its_result_to_the_output_file(
    server: Server, tmp_path: Path
) -> None:
    name = active_function(server, tmp_path, GREETER)

    result, outfile = cli_invoke(server, tmp_path, name, '{"name": "cli"}')

    assert ok(result) == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert json.loads(outfile.read_text()) == {"greeting": "hello cli"}


def test_the_cli_invokes_with_log_type_tail_and_prints_the_last_log_lines(
    server: Server, tmp_path: Path
) -> None:
    name = active_function(server, tmp_path, GREETER)

    result, outfile = cli_invoke(server, tmp_path, name, '{"name": "tail"}', "--log-type", "Tail")

    printed = ok(result)
    assert printed["StatusCode"] == 200
    assert printed["ExecutedVersion"] == "$LATEST"
    lines = base64.b64decode(printed["LogResult"]).decode().splitlines()
    assert lines[0].startswith("START RequestId: ")
    assert lines[0].endswith(" Version: $LATEST")
    request_id = lines[0].removeprefix("START RequestId: ").removesuffix(" Version: $LATEST")
    assert "greeting tail" in lines
    assert f"END RequestId: {request_id}" in lines
    assert lines[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert json.loads(outfile.read_text()) == {"greeting": "hello tail"}


def test_the_cli_queues_an_event_invoke_with_202_and_the_function_runs_it(
    server: Server, tmp_path: Path
) -> None:
    name = active_function(server, tmp_path, GREETER)
    marker = unique_name("event")

    result, outfile = cli_invoke(
        server, tmp_path, name, json.dumps({"name": marker}), "--invocation-type", "Event"
    )

    assert ok(result) == {"StatusCode": 202}
    assert outfile.read_bytes() == b""
    deadline = time.monotonic() + 30
    while f"greeting {marker}" not in server.function_log(name):
        assert time.monotonic() < deadline, "the event never ran"
        time.sleep(0.05)


def test_a_function_error_is_printed_as_unhandled_with_the_error_document_in_the_file(
    server: Server, tmp_path: Path
) -> None:
    name = active_function(server, tmp_path, FAILING)

    result, outfile = cli_invoke(server, tmp_path, name, '{"name": "cli"}')

    assert ok(result) == {
        "StatusCode": 200,
        "FunctionError": "Unhandled",
        "ExecutedVersion": "$LATEST",
    }
    error = json.loads(outfile.read_text())
    assert sorted(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorMessage"] == "no greeting for cli"
    assert error["errorType"] == "ValueError"
    assert error["stackTrace"][-1].startswith('  File "/var/task/index.py", line 2, in handler\n')


def test_a_throttled_invoke_makes_the_cli_exit_non_zero_with_too_many_requests(
    server: Server, tmp_path: Path
) -> None:
    name = active_function(server, tmp_path, GREETER)
    ok(
        aws(
            server,
            tmp_path,
            "put-function-concurrency",
            "--function-name", name,
            "--reserved-concurrent-executions", "0",
        )
    )  # fmt: skip

    result, _ = cli_invoke(server, tmp_path, name, '{"name": "cli"}')

    assert result.returncode != 0
    assert result.stdout == ""
    assert "TooManyRequestsException" in result.stderr
    assert "Rate Exceeded." in result.stderr
