"""Lamina answers the requests of LocalStack's parity tests as real AWS Lambda answered them.

Each test repeats, through boto3, a step that LocalStack's suite recorded against AWS (the
recordings are in /work/shared/reference/aws-recorded) and compares Lamina's parsed response with
AWS's: the same keys, the same value types, the same fixed values, the same HTTP status, and the
same messages once the recorded placeholders are filled in (see `tests/e2e/recorded.py`).

Where the recorded test chose a value this host cannot repeat (the Python runtime: AWS ran
python3.12 and then python3.11, Lamina runs what is installed here), that path is compared by
type only and named in `chosen`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import PYTHON_RUNTIME, ROLE, Server, make_zip, unique_name
from tests.e2e.recorded import Bindings, mismatches, recording, shape

ECHO = {"handler.py": "def handler(event, context):\n    return event\n"}
ECHO_V2 = {"handler.py": "def handler(event, context):\n    return {'version': 2}\n"}
FAST = {"Delay": 0.1, "MaxAttempts": 100}
NO_VARIABLES = {"Variables": {}}
RUNTIME_PATHS = {"Runtime", "RuntimeVersionConfig.RuntimeVersionArn"}
IN_CONFIGURATION = {f"Configuration.{path}" for path in RUNTIME_PATHS}


def answer(call: Callable[..., Any], **params: Any) -> dict[str, Any]:
    """The parsed response of a call, whether it succeeded or was refused."""
    try:
        return call(**params)
    except ClientError as exc:
        return exc.response


def wait_active(lam: Any, name: str) -> None:
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST)


def wait_updated(lam: Any, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST)


# The lifecycle of one function: create, read, update configuration and code, delete.

LIFECYCLE = "TestLambdaFunction::test_function_lifecycle"


@dataclass
class Step:
    label: str
    response: dict[str, Any]
    differences: list[str]


@pytest.fixture(scope="module")
def lifecycle(server: Server) -> dict[str, Step]:
    """Lamina's answer to each step of the recorded lifecycle, compared in order.

    One `Bindings` spans the steps, so a RevisionId must change where AWS's changed and the
    CodeSha256 must stay where AWS's stayed.
    """
    lam: Any = server.client()
    name = unique_name("recorded-lifecycle")
    bindings = Bindings()
    steps: dict[str, Step] = {}

    def record(label: str, response: dict[str, Any], chosen: set[str]) -> None:
        found = mismatches(recording(LIFECYCLE, label), response, bindings, chosen)
        steps[label] = Step(label, response, found)

    # LocalStack's create fixture sent an empty Environment, and AWS's answers show it.
    create = {
        "FunctionName": name,
        "Role": ROLE,
        "Handler": "handler.handler",
        "Environment": NO_VARIABLES,
    }
    record(
        "create_response",
        answer(
            lam.create_function,
            **create,
            Runtime=PYTHON_RUNTIME,
            MemorySize=256,
            Timeout=5,
            Code={"ZipFile": make_zip(ECHO)},
        ),
        {"Runtime"},
    )
    wait_active(lam, name)
    record("get_function_response", lam.get_function(FunctionName=name), {"Configuration.Runtime"})
    update = answer(
        lam.update_function_configuration,
        FunctionName=name,
        Runtime=PYTHON_RUNTIME,
        Description="Changed-Description",
        MemorySize=512,
        Timeout=10,
        Environment={"Variables": {"ENV_A": "a"}},
    )
    record("update_func_conf_response", update, RUNTIME_PATHS)
    wait_updated(lam, name)
    record(
        "get_function_response_postupdate", lam.get_function(FunctionName=name), IN_CONFIGURATION
    )
    code = answer(lam.update_function_code, FunctionName=name, ZipFile=make_zip(ECHO_V2))
    record("update_code_response", code, RUNTIME_PATHS)
    wait_updated(lam, name)
    after_code = lam.get_function(FunctionName=name)
    record("get_function_response_postcodeupdate", after_code, IN_CONFIGURATION)
    record("delete_response", answer(lam.delete_function, FunctionName=name), set())
    record("delete_postdelete", answer(lam.delete_function, FunctionName=name), set())
    return steps


@pytest.mark.parametrize(
    "label",
    [
        "create_response",
        "get_function_response",
        "update_func_conf_response",
        "get_function_response_postupdate",
        "update_code_response",
        "get_function_response_postcodeupdate",
        "delete_response",
        "delete_postdelete",
    ],
)
def test_each_step_of_a_function_lifecycle_answers_as_aws_did(
    lifecycle: dict[str, Step], label: str
) -> None:
    step = lifecycle[label]

    assert shape(step.response) == shape(recording(LIFECYCLE, label))
    assert step.differences == []


# Revision ids through create, activation and updates, with stale ids refused.

REVISIONS = "TestLambdaRevisions::test_function_revisions_basic"


@pytest.fixture(scope="module")
def revisions(server: Server) -> dict[str, Step]:
    """Lamina's answers to the recorded revision-id scenario, compared in order."""
    lam: Any = server.client()
    name = unique_name("recorded-revisions")
    zip_bytes = make_zip({"index.py": ECHO["handler.py"]})
    bindings = Bindings()
    steps: dict[str, Step] = {}

    def record(label: str, response: dict[str, Any], chosen: set[str]) -> None:
        found = mismatches(recording(REVISIONS, label), response, bindings, chosen)
        steps[label] = Step(label, response, found)

    created = answer(
        lam.create_function,
        FunctionName=name,
        Role=ROLE,
        Handler="index.handler",
        Runtime=PYTHON_RUNTIME,
        Timeout=30,
        Environment=NO_VARIABLES,
        Code={"ZipFile": zip_bytes},
    )
    record("create_function_response_rev1", created, {"Runtime"})
    wait_active(lam, name)
    active = lam.get_function(FunctionName=name)
    record("get_function_response_rev2", active, {"Configuration.Runtime"})
    record(
        "update_function_revision_exception",
        answer(lam.update_function_code, FunctionName=name, ZipFile=zip_bytes, RevisionId="wrong"),
        set(),
    )
    code = answer(
        lam.update_function_code,
        FunctionName=name,
        ZipFile=zip_bytes,
        RevisionId=active["Configuration"]["RevisionId"],
    )
    record("update_function_code_response_rev3", code, {"Runtime"})
    wait_updated(lam, name)
    after_code = lam.get_function(FunctionName=name)
    record("get_function_response_rev4", after_code, {"Configuration.Runtime"})
    record(
        "update_function_configuration_revision_exception",
        answer(
            lam.update_function_configuration,
            FunctionName=name,
            Runtime=PYTHON_RUNTIME,
            RevisionId="wrong",
        ),
        set(),
    )
    config = answer(
        lam.update_function_configuration,
        FunctionName=name,
        Runtime=PYTHON_RUNTIME,
        RevisionId=after_code["Configuration"]["RevisionId"],
    )
    record("update_function_configuration_response_rev5", config, RUNTIME_PATHS)
    wait_updated(lam, name)
    record("get_function_response_rev6", lam.get_function(FunctionName=name), IN_CONFIGURATION)
    lam.delete_function(FunctionName=name)
    return steps


@pytest.mark.parametrize(
    "label",
    [
        "create_function_response_rev1",
        "get_function_response_rev2",
        "update_function_revision_exception",
        "update_function_code_response_rev3",
        "get_function_response_rev4",
        "update_function_configuration_revision_exception",
        "update_function_configuration_response_rev5",
        "get_function_response_rev6",
    ],
)
def test_revision_ids_change_and_stale_ones_are_refused_as_aws_did(
    revisions: dict[str, Step], label: str
) -> None:
    step = revisions[label]

    assert shape(step.response) == shape(recording(REVISIONS, label))
    assert step.differences == []


# Single requests, most of them refused, each compared with AWS's answer to the same request.


@dataclass(frozen=True)
class Target:
    """An Active function that the single requests may name."""

    name: str
    arn: str
    account: str
    region: str


@pytest.fixture(scope="module")
def target(server: Server) -> Iterator[Target]:
    lam: Any = server.client()
    name = unique_name("recorded-target")
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        Handler="index.handler",
        Runtime=PYTHON_RUNTIME,
        Code={"ZipFile": make_zip({"index.py": ECHO["handler.py"]})},
    )
    wait_active(lam, name)
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    _, _, _, region, account, *_ = arn.split(":")
    yield Target(name, arn, account, region)
    lam.delete_function(FunctionName=name)


def create_params(name: str, **changes: Any) -> dict[str, Any]:
    params = {
        "FunctionName": name,
        "Handler": "index.handler",
        "Code": {"ZipFile": make_zip({"index.py": ECHO["handler.py"]})},
        "PackageType": "Zip",
        "Role": ROLE,
        "Runtime": PYTHON_RUNTIME,
    }
    params.update(changes)
    return params


def arn_of(target: Target, name: str, region: str | None = None, account: str = "") -> str:
    return f"arn:aws:lambda:{region or target.region}:{account or target.account}:function:{name}"


Request = Callable[[Any, Target], dict[str, Any]]
MISSING_FUNCTION_OPS = (
    "delete_function",
    "get_function",
    "get_function_configuration",
    "get_function_concurrency",
)
WRONG_REGION_OPS = MISSING_FUNCTION_OPS
DEPRECATED_RUNTIMES = (
    "java8",
    "go1.x",
    "provided",
    "ruby2.7",
    "nodejs14.x",
    "python3.7",
    "dotnetcore3.1",
    "nodejs12.x",
)
API = "TestLambdaFunction"
CASES: list[tuple[str, str, Request]] = [
    # Operations on a function that does not exist.
    *[
        (
            f"{API}::test_ops_on_nonexisting_fn[{op}]",
            "not_found_exception",
            lambda lam, t, op=op: answer(
                getattr(lam, op), FunctionName=unique_name("i-dont-exist")
            ),
        )
        for op in MISSING_FUNCTION_OPS
    ],
    # A qualified ARN whose qualifier disagrees with Qualifier, then one that agrees.
    *[
        case
        for op in ("delete_function", "get_function", "get_function_configuration")
        for case in (
            (
                f"{API}::test_ops_with_arn_qualifier_mismatch[{op}]",
                "not_match_exception",
                lambda lam, t, op=op: answer(
                    getattr(lam, op),
                    FunctionName=arn_of(t, "some-function:1"),
                    Qualifier="$LATEST",
                ),
            ),
            (
                f"{API}::test_ops_with_arn_qualifier_mismatch[{op}]",
                "match_exception",
                lambda lam, t, op=op: answer(
                    getattr(lam, op),
                    FunctionName=arn_of(t, "some-function:$LATEST"),
                    Qualifier="$LATEST",
                ),
            ),
        )
    ],
    # A version that does not exist, of a function that does.
    *[
        (
            f"{API}::test_ops_on_nonexisting_version[{op}]",
            "version_not_found_exception",
            lambda lam, t, op=op: answer(getattr(lam, op), FunctionName=t.name, Qualifier="1221"),
        )
        for op in ("get_function", "get_function_configuration")
    ],
    # A full ARN of another region.
    *[
        (
            f"{API}::test_get_function_wrong_region[{op}]",
            "wrong_region_exception",
            lambda lam, t, op=op: answer(
                getattr(lam, op), FunctionName=arn_of(t, t.name, region="eu-central-1")
            ),
        )
        for op in WRONG_REGION_OPS
    ],
    # CreateFunction with bad parameters.
    *[
        (
            f"{API}::test_create_lambda_exceptions",
            label,
            lambda lam, t, changes=changes: answer(
                lam.create_function, **create_params(unique_name("invalid-function"), **changes)
            ),
        )
        for label, changes in (
            ("invalid_role_arn_exc", {"Role": "r1"}),
            ("invalid_runtime_exc", {"Runtime": "non-existent-runtime"}),
            ("uppercase_runtime_exc", {"Runtime": "PYTHON3.9"}),
            ("multiple_architectures", {"Architectures": ["x86_64", "arm64"]}),
            ("uppercase_architecture", {"Architectures": ["X86_64"]}),
            (
                "invalid_zip_exc",
                {"Code": {"ZipFile": b"this is not a zipfile, just a random string"}},
            ),
        )
    ],
    # UpdateFunctionConfiguration with bad parameters.
    *[
        (
            f"{API}::test_update_lambda_exceptions",
            label,
            lambda lam, t, changes=changes: answer(
                lam.update_function_configuration, FunctionName=t.name, **changes
            ),
        )
        for label, changes in (
            ("invalid_role_arn_exc", {"Role": "r1"}),
            ("invalid_runtime_exc", {"Runtime": "non-existent-runtime"}),
            ("uppercase_runtime_exc", {"Runtime": "PYTHON3.9"}),
        )
    ],
    # Function names and ARNs that CreateFunction refuses.
    *[
        (
            f"{API}::test_function_arns",
            label,
            lambda lam, t, make=make: answer(lam.create_function, **create_params(make(t))),
        )
        for label, make in (
            ("invalid_function_name_exc", lambda t: "invalid:function:name"),
            ("long_function_name_exc", lambda t: "a" * 65),
            ("long_function_arn_exc", lambda t: arn_of(t, "a" * (141 - len(arn_of(t, ""))))),
            (
                "function_arn_other_region_exc",
                lambda t: arn_of(t, unique_name("test-function-arn"), region="ap-southeast-1"),
            ),
            (
                "function_arn_other_account_exc",
                lambda t: arn_of(t, unique_name("test-function-arn"), account="123456789012"),
            ),
        )
    ],
    (
        f"{API}::test_list_functions",
        "list_functions_invalid_functionversion",
        lambda lam, t: answer(lam.list_functions, FunctionVersion="invalid"),
    ),
    # Runtimes AWS no longer accepts.
    *[
        (
            "TestRuntimeValidation::test_create_deprecated_function_runtime_with_validation_"
            f"enabled[{runtime}]",
            "deprecation_error",
            lambda lam, t, runtime=runtime: answer(
                lam.create_function,
                **create_params(unique_name("deprecated"), Runtime=runtime),
            ),
        )
        for runtime in DEPRECATED_RUNTIMES
    ],
    # Reserved concurrency on functions that do not exist or are qualified, or beyond limits.
    (
        "TestLambdaReservedConcurrency::test_function_concurrency_exceptions",
        "put_function_concurrency_with_function_name_doesnotexist",
        lambda lam, t: answer(
            lam.put_function_concurrency,
            FunctionName="doesnotexist",
            ReservedConcurrentExecutions=1,
        ),
    ),
    (
        "TestLambdaReservedConcurrency::test_function_concurrency_exceptions",
        "put_function_concurrency_with_function_name_doesnotexist_and_invalid_concurrency",
        lambda lam, t: answer(
            lam.put_function_concurrency,
            FunctionName="doesnotexist",
            ReservedConcurrentExecutions=0,
        ),
    ),
    (
        "TestLambdaReservedConcurrency::test_function_concurrency_exceptions",
        "put_function_concurrency_with_qualified_arn",
        lambda lam, t: answer(
            lam.put_function_concurrency,
            FunctionName=f"{t.arn}:$LATEST",
            ReservedConcurrentExecutions=0,
        ),
    ),
    *[
        (
            "TestLambdaReservedConcurrency::test_function_concurrency_limits",
            label,
            lambda lam, t, extra=extra: answer(
                lam.put_function_concurrency,
                FunctionName=t.name,
                ReservedConcurrentExecutions=(
                    lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] + extra
                ),
            ),
        )
        for label, extra in (
            ("put_function_concurrency_account_limit_exceeded", 1),
            ("put_function_concurrency_below_unreserved_min_value", 0),
        )
    ],
]


@pytest.mark.parametrize(
    ("test", "label", "request_"),
    CASES,
    ids=[f"{test.split('::')[-1]}-{label}" for test, label, _ in CASES],
)
def test_a_single_request_is_answered_as_aws_answered_it(
    lam: Any, target: Target, test: str, label: str, request_: Request
) -> None:
    recorded = recording(test, label)

    response = request_(lam, target)
    if response["ResponseMetadata"]["HTTPStatusCode"] == 201:  # created against AWS's answer
        lam.delete_function(FunctionName=response["FunctionName"])

    assert shape(response) == shape(recorded)
    assert mismatches(recorded, response) == []


def test_deleting_a_missing_version_is_idempotent_and_a_deleted_function_is_not_found(
    lam: Any,
) -> None:
    test = f"{API}::test_delete_on_nonexisting_version"
    name = unique_name("i-exist")
    lam.create_function(**create_params(name))
    wait_active(lam, name)

    first = answer(lam.delete_function, FunctionName=name, Qualifier="1233")
    second = answer(lam.delete_function, FunctionName=name, Qualifier="1233")
    deleted = answer(lam.delete_function, FunctionName=name)
    unqualified = answer(lam.delete_function, FunctionName=name)
    qualified = answer(lam.delete_function, FunctionName=name, Qualifier="1233")

    assert [r["ResponseMetadata"]["HTTPStatusCode"] for r in (first, second, deleted)] == [
        204,
        204,
        204,
    ]
    bindings = Bindings()
    for label, response in (
        ("delete_function_response_non_existent", unqualified),
        ("delete_function_response_non_existent_with_qualifier", qualified),
    ):
        assert shape(response) == shape(recording(test, label)), label
        assert mismatches(recording(test, label), response, bindings) == [], label


def test_reserved_concurrency_is_put_read_and_deleted_as_aws_did(lam: Any, target: Target) -> None:
    test = "TestLambdaReservedConcurrency::test_function_concurrency"
    name = target.name

    responses = {
        "put_function_concurrency_with_reserved_0": answer(
            lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=0
        ),
        "put_function_concurrency_with_reserved_1": answer(
            lam.put_function_concurrency, FunctionName=name, ReservedConcurrentExecutions=1
        ),
        "get_function_concurrency": answer(lam.get_function_concurrency, FunctionName=name),
        "delete_response": answer(lam.delete_function_concurrency, FunctionName=name),
        "get_function_concurrency_after_delete": answer(
            lam.get_function_concurrency, FunctionName=name
        ),
    }

    for label, response in responses.items():
        assert shape(response) == shape(recording(test, label)), label
        assert mismatches(recording(test, label), response) == [], label


def test_account_settings_carry_the_limits_and_usage_members_aws_returns(lam: Any) -> None:
    recorded = recording("TestLambdaAccountSettings::test_account_settings", "acc_settings_modded")

    settings = lam.get_account_settings()

    assert sorted(settings["AccountLimit"]) == recorded["AccountLimit"]
    assert sorted(settings["AccountUsage"]) == recorded["AccountUsage"]
    assert settings["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_listed_function_has_the_members_aws_lists_and_no_state(lam: Any) -> None:
    recorded = recording("TestLambdaFunction::test_list_functions", "list_default")["Functions"][1]
    name = unique_name("list-fn-2")
    lam.create_function(
        **create_params(name, Handler="handler.handler", Timeout=30, Environment=NO_VARIABLES)
    )
    wait_active(lam, name)
    current = lam.get_function_configuration(FunctionName=name)

    pages = lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 50})
    listed = [f for page in pages for f in page["Functions"] if f["FunctionName"] == name]

    assert len(listed) == 1
    assert shape(listed[0]) == shape(recorded)
    assert mismatches(recorded, listed[0], chosen={"Runtime"}) == []
    assert listed[0]["RevisionId"] == current["RevisionId"]
    lam.delete_function(FunctionName=name)


@pytest.mark.parametrize(
    ("test", "label"),
    [
        ("test_large_environment_variables_fails", "failed_create_fn_result"),
        ("test_large_environment_fails_multiple_keys", "failured_create_fn_result_multi_key"),
    ],
)
def test_environment_variables_one_byte_over_4_kb_are_refused_with_aws_message(
    lam: Any, test: str, label: str
) -> None:
    recorded = recording(f"TestLambdaSizeLimits::{test}", label)
    # The recorded message quotes the variables AWS measured: send exactly those.
    variables = json.loads(recorded["message"].split("String measured: ", 1)[1])
    name = unique_name("large-env")

    response = answer(
        lam.create_function, **create_params(name, Environment={"Variables": variables})
    )

    assert shape(response) == shape(recorded)
    assert mismatches(recorded, response) == []
    assert answer(lam.get_function, FunctionName=name)["Error"]["Code"] == (
        "ResourceNotFoundException"
    )


def test_environment_variables_of_exactly_4_kb_are_accepted_as_aws_accepted_them(
    lam: Any,
) -> None:
    recorded = recording(
        "TestLambdaSizeLimits::test_lambda_envvars_near_limit_succeeds",
        "successful_create_fn_result",
    )
    variables = recorded["Environment"]["Variables"]
    name = unique_name("near-limit-env")

    response = answer(
        lam.create_function,
        **create_params(
            name, Handler="handler.handler", Timeout=30, Environment={"Variables": variables}
        ),
    )

    assert shape(response) == shape(recorded)
    assert mismatches(recorded, response, chosen={"Runtime"}) == []
    wait_active(lam, name)
    lam.delete_function(FunctionName=name)
