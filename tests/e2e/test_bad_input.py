"""Bad input to the control plane gets Lambda's error type, status and message, and stores nothing.

Where AWS's own answer was recorded (/work/shared/reference/aws-recorded) the expected message is
taken from the recording. Rules Lamina adds for its own safety (no links or paths leading out of
the code directory in a zip) and for what this host lacks (runtimes not installed) are answered
as InvalidParameterValueException with Lamina's own messages, which these tests pin down.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import stat
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import PYTHON_RUNTIME, ROLE, Server, create_function, make_zip, unique_name
from tests.e2e.recorded import recording

ECHO = "def handler(event, context):\n    return event\n"
UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."
TOO_BIG = "Unzipped size must be smaller than 262144000 bytes"
OUTSIDE = (
    "The uploaded file contains '{}', a path that leads outside the function's code directory."
)


def not_found(name: str, qualifier: str = "") -> str:
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    return f"Function not found: {arn}{qualifier}"


def recorded_message(test: str, label: str) -> str:
    return str(recording(test, label)["Error"]["Message"])


# AWS's enum message for an unknown runtime, with the runtime it named replaced by {}.
UNKNOWN_RUNTIME = recorded_message(
    "TestLambdaFunction::test_create_lambda_exceptions", "invalid_runtime_exc"
).replace("non-existent-runtime", "{}", 1)
# The pattern AWS quotes when a function name has characters it does not allow.
NAME_PATTERN = recorded_message(
    "TestLambdaFunction::test_function_arns", "invalid_function_name_exc"
).split("regular expression pattern: ", 1)[1]


def refusal(call: Any, **params: Any) -> dict[str, Any]:
    """The error response to a call that must be refused."""
    with pytest.raises(ClientError) as refused:
        call(**params)
    return refused.value.response


def status_of(response: dict[str, Any]) -> int:
    return int(response["ResponseMetadata"]["HTTPStatusCode"])


def assert_refused(response: dict[str, Any], code: str, message: str, status: int = 400) -> None:
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"] == message
    assert status_of(response) == status


def assert_not_stored(lam: Any, name: str) -> None:
    with pytest.raises(ClientError) as missing:
        lam.get_function(FunctionName=name)
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert status_of(missing.value.response) == 404


def assert_blob_not_stored(server: Server, zip_bytes: bytes) -> None:
    digest = hashlib.sha256(zip_bytes).hexdigest()
    assert not (server.data_dir / "code" / f"{digest}.zip").exists()


@pytest.fixture
def lax(server: Server) -> Any:
    """A client that sends what botocore's own parameter checks would stop."""
    return server.client(parameter_validation=False)


def create_params(name: str, **changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "FunctionName": name,
        "Role": ROLE,
        "Handler": "index.handler",
        "Runtime": PYTHON_RUNTIME,
        "Code": {"ZipFile": make_zip({"index.py": ECHO})},
    }
    params.update(changes)
    return params


# Runtimes


@pytest.mark.parametrize("runtime", ["python9.9", "PYTHON3.11", "cobol85"])
def test_an_unknown_runtime_is_refused_with_lambdas_enum_message(lax: Any, runtime: str) -> None:
    name = unique_name("bad-runtime")

    response = refusal(lax.create_function, **create_params(name, Runtime=runtime))

    assert_refused(response, "InvalidParameterValueException", UNKNOWN_RUNTIME.format(runtime))
    assert response["Type"] == "User"
    assert_not_stored(lax, name)


@pytest.mark.parametrize("runtime", ["python3.7", "python3.6", "nodejs12.x", "go1.x"])
def test_a_deprecated_runtime_is_refused_as_no_longer_supported(lam: Any, runtime: str) -> None:
    name = unique_name("old-runtime")

    response = refusal(lam.create_function, **create_params(name, Runtime=runtime))

    assert_refused(
        response,
        "InvalidParameterValueException",
        f"The runtime parameter of {runtime} is no longer supported for creating or updating "
        "AWS Lambda functions. We recommend you use a supported runtime while creating or "
        "updating functions.",
    )
    assert_not_stored(lam, name)


def test_a_lambda_runtime_not_installed_here_is_refused_naming_the_installed_ones(
    lam: Any,
) -> None:
    name = unique_name("node")

    response = refusal(lam.create_function, **create_params(name, Runtime="nodejs20.x"))

    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert status_of(response) == 400
    found = re.fullmatch(
        r"The runtime nodejs20\.x is valid for AWS Lambda but is not installed on this Lamina "
        r"host\. Runtimes installed here: (.+)\.",
        response["Error"]["Message"],
    )
    assert found, response["Error"]["Message"]
    assert PYTHON_RUNTIME in found.group(1).split(", ")
    assert_not_stored(lam, name)


def test_updating_to_a_deprecated_runtime_is_refused_and_keeps_the_runtime(lam: Any) -> None:
    name = create_function(lam, ECHO)

    response = refusal(lam.update_function_configuration, FunctionName=name, Runtime="python3.7")

    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert response["Error"]["Message"].startswith("The runtime parameter of python3.7 is no")
    assert lam.get_function_configuration(FunctionName=name)["Runtime"] == PYTHON_RUNTIME


# Numeric limits (checked by botocore too, so sent by a client that skips its checks)


@pytest.mark.parametrize(
    ("member", "path", "value", "constraint"),
    [
        ("Timeout", "timeout", 0, "greater than or equal to 1"),
        ("Timeout", "timeout", 901, "less than or equal to 900"),
        ("MemorySize", "memorySize", 127, "greater than or equal to 128"),
        ("MemorySize", "memorySize", 10241, "less than or equal to 10240"),
    ],
)
def test_timeout_and_memory_outside_lambdas_limits_are_refused_as_validation_errors(
    lax: Any, member: str, path: str, value: int, constraint: str
) -> None:
    name = unique_name("limits")

    response = refusal(lax.create_function, **create_params(name, **{member: value}))

    assert_refused(
        response,
        "ValidationException",
        f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
        f"constraint: Member must have value {constraint}",
    )
    assert "Type" not in response
    assert_not_stored(lax, name)


def test_the_limits_themselves_are_accepted(lam: Any) -> None:
    name = unique_name("at-limits")

    created = lam.create_function(**create_params(name, Timeout=900, MemorySize=10240))

    assert (created["Timeout"], created["MemorySize"]) == (900, 10240)
    lam.delete_function(FunctionName=name)


def test_an_update_outside_the_limits_is_refused_and_changes_nothing(lax: Any) -> None:
    name = create_function(lax, ECHO)

    response = refusal(lax.update_function_configuration, FunctionName=name, Timeout=901)

    assert response["Error"]["Code"] == "ValidationException"
    assert status_of(response) == 400
    assert lax.get_function_configuration(FunctionName=name)["Timeout"] == 3


# Environment variables


def test_environment_variables_over_4_kb_are_refused_quoting_what_was_measured(lam: Any) -> None:
    name = unique_name("big-env")
    variables = {"FIRST": "a" * 2000, "SECOND": "b" * 2100}

    response = refusal(
        lam.create_function, **create_params(name, Environment={"Variables": variables})
    )

    measured = json.dumps(variables, separators=(",", ":"))
    assert_refused(
        response,
        "InvalidParameterValueException",
        "Lambda was unable to configure your environment variables because the environment "
        f"variables you have provided exceeded the 4KB limit. String measured: {measured}",
    )
    assert_not_stored(lam, name)


@pytest.mark.parametrize("key", ["AWS_REGION", "AWS_LAMBDA_FUNCTION_NAME", "LAMBDA_TASK_ROOT"])
def test_a_reserved_environment_key_is_refused_naming_it(lam: Any, key: str) -> None:
    name = unique_name("reserved-env")

    response = refusal(
        lam.create_function,
        **create_params(name, Environment={"Variables": {"MINE": "ok", key: "x"}}),
    )

    assert_refused(
        response,
        "InvalidParameterValueException",
        "Lambda was unable to configure your environment variables because the environment "
        "variables you have provided contains reserved keys that are currently not supported "
        f"for modification. Reserved keys used in this request: {key}",
    )
    assert_not_stored(lam, name)


def test_a_reserved_key_in_an_update_is_refused_and_keeps_the_variables(lam: Any) -> None:
    name = create_function(lam, ECHO, Environment={"Variables": {"MINE": "ok"}})

    response = refusal(
        lam.update_function_configuration,
        FunctionName=name,
        Environment={"Variables": {"AWS_REGION": "eu-west-1"}},
    )

    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert response["Error"]["Message"].endswith("Reserved keys used in this request: AWS_REGION")
    configuration = lam.get_function_configuration(FunctionName=name)
    assert configuration["Environment"] == {"Variables": {"MINE": "ok"}}


def test_an_environment_key_of_one_character_fails_the_key_pattern(lam: Any) -> None:
    name = unique_name("short-key")

    response = refusal(
        lam.create_function, **create_params(name, Environment={"Variables": {"A": "1"}})
    )

    assert_refused(
        response,
        "ValidationException",
        "1 validation error detected: Value at 'environment.variables' failed to satisfy "
        "constraint: Map keys must satisfy constraint: [Member must satisfy regular expression "
        "pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
    )
    assert_not_stored(lam, name)


# Zip archives


def symlink_zip() -> bytes:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", ECHO)
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("zip_bytes", "message"),
    [
        pytest.param(b"this is not a zip file", UNZIP_FAILED, id="not-a-zip"),
        pytest.param(make_zip({"index.py": ECHO})[:-30], UNZIP_FAILED, id="truncated-zip"),
        pytest.param(b"", UNZIP_FAILED, id="empty"),
        pytest.param(
            make_zip({"index.py": ECHO, "../x": "escape"}), OUTSIDE.format("../x"), id="dot-dot"
        ),
        pytest.param(
            make_zip({"index.py": ECHO, "a/../../x": "escape"}),
            OUTSIDE.format("a/../../x"),
            id="nested-dot-dot",
        ),
        pytest.param(
            make_zip({"index.py": ECHO, "/etc/x": "abs"}), OUTSIDE.format("/etc/x"), id="absolute"
        ),
        pytest.param(
            symlink_zip(),
            "The uploaded file contains 'link', a symbolic link; Lamina extracts only regular "
            "files and directories.",
            id="symlink",
        ),
    ],
)
def test_an_archive_that_cannot_be_extracted_safely_is_refused_and_not_stored(
    server: Server, lam: Any, zip_bytes: bytes, message: str
) -> None:
    name = unique_name("bad-zip")

    response = refusal(lam.create_function, **create_params(name, Code={"ZipFile": zip_bytes}))

    assert_refused(response, "InvalidParameterValueException", message)
    assert response["Type"] == "User"
    assert_not_stored(lam, name)
    assert_blob_not_stored(server, zip_bytes)


@pytest.fixture(scope="module")
def oversized_zip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 260 MiB file of zeros, deflated to a few hundred KB; written in 1 MiB chunks."""
    path = tmp_path_factory.mktemp("zips") / "oversized.zip"
    chunk = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.bin", "w", force_zip64=True) as entry,
    ):
        for _ in range(260):
            entry.write(chunk)
    return path.read_bytes()


def test_an_archive_declaring_more_than_250_mb_unzipped_is_refused_as_aws_refuses_it(
    server: Server, lam: Any, oversized_zip: bytes
) -> None:
    name = unique_name("too-big")
    recorded = recording(
        "TestLambdaSizeLimits::test_oversized_unzipped_lambda", "invalid_param_exc"
    )

    response = refusal(lam.create_function, **create_params(name, Code={"ZipFile": oversized_zip}))

    assert len(oversized_zip) < 1_000_000
    assert_refused(response, "InvalidParameterValueException", TOO_BIG)
    assert response["Error"] == recorded["Error"]
    assert_not_stored(lam, name)
    assert_blob_not_stored(server, oversized_zip)


def test_an_oversized_archive_in_a_code_update_is_refused_and_keeps_the_code(
    lam: Any, oversized_zip: bytes
) -> None:
    name = create_function(lam, ECHO)
    before = lam.get_function_configuration(FunctionName=name)["CodeSha256"]

    response = refusal(lam.update_function_code, FunctionName=name, ZipFile=oversized_zip)

    assert_refused(response, "InvalidParameterValueException", TOO_BIG)
    assert lam.get_function_configuration(FunctionName=name)["CodeSha256"] == before


# Function names


def test_a_name_longer_than_64_characters_is_refused_as_aws_refuses_it(lam: Any) -> None:
    name = "a" * 65

    response = refusal(lam.create_function, **create_params(name))

    assert_refused(
        response,
        "InvalidParameterValueException",
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        "constraint: Member must have length less than or equal to 64",
    )


def test_a_name_of_exactly_64_characters_is_accepted(lam: Any) -> None:
    name = unique_name("n").ljust(64, "x")

    created = lam.create_function(**create_params(name))

    assert created["FunctionName"] == name
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize("name", ["my-function!", "has space", "dot.in.name", "ünïcode"])
def test_a_name_with_characters_lambda_does_not_allow_is_refused_quoting_the_pattern(
    lam: Any, name: str
) -> None:
    count_before = lam.get_account_settings()["AccountUsage"]["FunctionCount"]

    response = refusal(lam.create_function, **create_params(name))

    assert_refused(
        response,
        "ValidationException",
        f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
        f"constraint: Member must satisfy regular expression pattern: {NAME_PATTERN}",
    )
    assert lam.get_account_settings()["AccountUsage"]["FunctionCount"] == count_before


# Functions that do not exist

OPERATIONS = [
    ("get_function", {}, ""),
    ("get_function_configuration", {}, ""),
    ("update_function_configuration", {"Timeout": 5}, ""),
    ("update_function_code", {"ZipFile": make_zip({"index.py": ECHO})}, ""),
    ("delete_function", {}, ""),
    # AWS names $LATEST here (recorded in test_function_concurrency_exceptions).
    ("put_function_concurrency", {"ReservedConcurrentExecutions": 1}, ":$LATEST"),
    ("get_function_concurrency", {}, ""),
    ("delete_function_concurrency", {}, ""),
]


@pytest.mark.parametrize(
    ("operation", "params", "qualifier"), OPERATIONS, ids=[op for op, _, _ in OPERATIONS]
)
def test_every_operation_on_an_unknown_function_answers_404_naming_its_arn(
    lam: Any, operation: str, params: dict[str, Any], qualifier: str
) -> None:
    name = unique_name("missing")

    response = refusal(getattr(lam, operation), FunctionName=name, **params)

    assert_refused(response, "ResourceNotFoundException", not_found(name, qualifier), 404)
    assert response["Type"] == "User"
    assert_not_stored(lam, name)


def test_an_unknown_version_of_a_known_function_is_not_found_naming_the_version(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)

    response = refusal(lam.get_function, FunctionName=name, Qualifier="7")

    assert_refused(response, "ResourceNotFoundException", not_found(name, ":7"), 404)


# Bodies that are not JSON objects


@pytest.fixture
def existing(lam: Any) -> Iterator[str]:
    name = create_function(lam, ECHO)
    yield name
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/2015-03-31/functions", b'{"FunctionName": "x", '),
        ("POST", "/2015-03-31/functions", b"\xff\xfe not utf-8"),
        ("POST", "/2015-03-31/functions", b'["a", "list"]'),
        ("PUT", "/2015-03-31/functions/{name}/configuration", b"{Timeout: 30}"),
        ("PUT", "/2015-03-31/functions/{name}/code", b'{"ZipFile": '),
        ("PUT", "/2017-10-31/functions/{name}/concurrency", b"five"),
    ],
    ids=["truncated", "not-utf8", "array", "unquoted-key", "code-truncated", "bare-word"],
)
def test_a_body_that_is_not_a_json_object_is_refused_with_a_json_error(
    server: Server, lam: Any, existing: str, method: str, path: str, body: bytes
) -> None:
    before = lam.get_function_configuration(FunctionName=existing)
    count_before = lam.get_account_settings()["AccountUsage"]["FunctionCount"]

    response = server.signed(
        method, path.format(name=existing), body, **{"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.headers["X-Amzn-ErrorType"] == "SerializationException"
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()
    assert error["Type"] == "User"
    assert isinstance(error["message"], str) and error["message"]
    after = lam.get_function_configuration(FunctionName=existing)
    assert after["RevisionId"] == before["RevisionId"]
    assert lam.get_account_settings()["AccountUsage"]["FunctionCount"] == count_before
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(
        FunctionName=existing
    )


def test_a_create_without_code_is_refused_as_a_missing_member(lax: Any) -> None:
    name = unique_name("no-code")
    params = create_params(name)
    del params["Code"]

    response = refusal(lax.create_function, **params)

    assert_refused(
        response,
        "ValidationException",
        "1 validation error detected: Value null at 'code' failed to satisfy constraint: "
        "Member must not be null",
    )
    assert_not_stored(lax, name)
