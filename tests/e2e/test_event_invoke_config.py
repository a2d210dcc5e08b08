"""Put, Update, Get, Delete and List FunctionEventInvokeConfig answer as AWS answered them.

Each case repeats through boto3 a step of LocalStack's TestLambdaEventInvokeConfig as recorded
against AWS (see tests/e2e/recorded.py) and compares Lamina's parsed answer with AWS's.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, unique_name
from tests.e2e.recorded import mismatches, recording, shape

EXCEPTIONS = "TestLambdaEventInvokeConfig::test_lambda_eventinvokeconfig_exceptions"
LIFECYCLE = "TestLambdaEventInvokeConfig::test_lambda_eventinvokeconfig_lifecycle"
CODE = "def handler(event, context):\n    return event\n"


@dataclass(frozen=True)
class Names:
    function: str
    sink: str
    account: str

    def arn(self, name: str, service: str = "lambda") -> str:
        return f"arn:aws:{service}:us-east-1:{self.account}:function:{name}"


@pytest.fixture(scope="module")
def sink(server: Server) -> Iterator[str]:
    lam: Any = server.client()
    name = create_function(lam, CODE, FunctionName=unique_name("sink"))
    yield name
    lam.delete_function(FunctionName=name)


@pytest.fixture
def names(lam: Any, sink: str) -> Iterator[Names]:
    name = create_function(lam, CODE)
    account = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"].split(":")[4]
    yield Names(name, sink, account)
    lam.delete_function(FunctionName=name)


def answer(call: Callable[..., Any], **params: Any) -> dict[str, Any]:
    """The parsed answer of a call, refused or not, with timestamps as the recording has them."""
    try:
        response = call(**params)
    except ClientError as exc:
        return exc.response
    for item in [response, *response.get("FunctionEventInvokeConfigs", [])]:
        if "LastModified" in item:
            assert isinstance(item["LastModified"], datetime.datetime)
            item["LastModified"] = "datetime"
    return response


Request = Callable[[Any, Names], dict[str, Any]]


def put(lam: Any, function: str, **settings: Any) -> dict[str, Any]:
    return answer(lam.put_function_event_invoke_config, FunctionName=function, **settings)


def update(lam: Any, function: str, **settings: Any) -> dict[str, Any]:
    return answer(lam.update_function_event_invoke_config, FunctionName=function, **settings)


def on(kind: str, arn: str) -> dict[str, Any]:
    return {"DestinationConfig": {kind: {"Destination": arn}}}


def then(first: Request, second: Request) -> Request:
    def both(lam: Any, n: Names) -> dict[str, Any]:
        first(lam, n)
        return second(lam, n)

    return both


PUT_TWO_AND_SIXTY: Request = lambda lam, n: put(  # noqa: E731
    lam, n.function, MaximumRetryAttempts=2, MaximumEventAgeInSeconds=60
)

CASES: list[tuple[str, str, Request]] = [
    (EXCEPTIONS, "put_functionname_name_notfound",
     lambda lam, n: put(lam, "doesnotexist", MaximumRetryAttempts=1)),
    (EXCEPTIONS, "put_functionname_arn_notfound",
     lambda lam, n: put(lam, n.arn("doesnotexist"), MaximumRetryAttempts=1)),
    (EXCEPTIONS, "put_functionname_nootherargs", lambda lam, n: put(lam, n.function)),
    (EXCEPTIONS, "put_destination_lambda_doesntexist",
     lambda lam, n: put(lam, n.function, **on("OnSuccess", n.arn("doesnotexist")))),
    (EXCEPTIONS, "put_destination_recursive",
     lambda lam, n: put(lam, n.function, **on("OnSuccess", n.arn(n.function)))),
    (EXCEPTIONS, "put_destination_other_lambda",
     lambda lam, n: put(lam, n.function, **on("OnSuccess", n.arn(n.sink)))),
    (EXCEPTIONS, "put_destination_invalid_service_arn",
     lambda lam, n: put(lam, n.function, **on("OnSuccess", n.arn(n.function, "iam")))),
    (EXCEPTIONS, "put_destination_success_no_destination_arn",
     lambda lam, n: put(lam, n.function, DestinationConfig={"OnSuccess": {}})),
    (EXCEPTIONS, "put_destination_failure_no_destination_arn",
     lambda lam, n: put(lam, n.function, DestinationConfig={"OnFailure": {}})),
    (EXCEPTIONS, "put_destination_invalid_arn_pattern",
     lambda lam, n: put(
         lam, n.function,
         **on("OnFailure", f"arn:aws:_-/!lambda:us-east-1:{n.account}:function:{n.function}"),
     )),
    (EXCEPTIONS, "put_destination_latest",
     lambda lam, n: put(lam, n.function, Qualifier="$LATEST", MaximumRetryAttempts=1)),
    (EXCEPTIONS, "put_shorthand_qualifier_match",
     lambda lam, n: put(lam, f"{n.function}:$LATEST", Qualifier="$LATEST",
                        MaximumRetryAttempts=1)),
    (EXCEPTIONS, "put_shorthand_qualifier_mismatch_1",
     lambda lam, n: put(lam, f"{n.function}:$LATEST", Qualifier="1", MaximumRetryAttempts=1)),
    (EXCEPTIONS, "put_alias_doesnotexist",
     lambda lam, n: put(lam, n.function, Qualifier="doesnotexist", MaximumRetryAttempts=1)),
    (EXCEPTIONS, "put_maxevent_maxvalue_result",
     lambda lam, n: put(lam, n.function, MaximumRetryAttempts=2,
                        MaximumEventAgeInSeconds=21600)),
    (EXCEPTIONS, "put_pre_overwrite", PUT_TWO_AND_SIXTY),
    (EXCEPTIONS, "put_post_overwrite",
     then(PUT_TWO_AND_SIXTY, lambda lam, n: put(lam, n.function, MaximumRetryAttempts=0))),
    (EXCEPTIONS, "get_post_overwrite",
     then(then(PUT_TWO_AND_SIXTY, lambda lam, n: put(lam, n.function, MaximumRetryAttempts=0)),
          lambda lam, n: answer(lam.get_function_event_invoke_config, FunctionName=n.function))),
    (EXCEPTIONS, "update_response",
     then(PUT_TWO_AND_SIXTY, lambda lam, n: update(lam, n.function, MaximumRetryAttempts=0))),
    (EXCEPTIONS, "delete_latest",
     then(PUT_TWO_AND_SIXTY, lambda lam, n: answer(
         lam.delete_function_event_invoke_config, FunctionName=n.function))),
    (EXCEPTIONS, "list_configs_postdelete",
     then(then(PUT_TWO_AND_SIXTY, lambda lam, n: answer(
         lam.delete_function_event_invoke_config, FunctionName=n.function)),
          lambda lam, n: answer(
              lam.list_function_event_invoke_configs, FunctionName=n.function))),
    (EXCEPTIONS, "delete_function_not_found",
     lambda lam, n: answer(lam.delete_function_event_invoke_config, FunctionName=n.function)),
    (EXCEPTIONS, "delete_function_doesnotexist",
     lambda lam, n: answer(lam.delete_function_event_invoke_config,
                           FunctionName="doesnotexist")),
    (EXCEPTIONS, "list_function_doesnotexist",
     lambda lam, n: answer(lam.list_function_event_invoke_configs,
                           FunctionName="doesnotexist")),
    (EXCEPTIONS, "get_function_doesnotexist",
     lambda lam, n: answer(lam.get_function_event_invoke_config, FunctionName="doesnotexist")),
    (EXCEPTIONS, "get_qualifier_doesnotexist",
     lambda lam, n: answer(lam.get_function_event_invoke_config, FunctionName=n.function,
                           Qualifier="doesnotexist")),
    (EXCEPTIONS, "update_eventinvokeconfig_function_doesnotexist",
     lambda lam, n: update(lam, "doesnotexist", MaximumRetryAttempts=1)),
    (EXCEPTIONS, "update_eventinvokeconfig_config_doesnotexist_without_qualifier",
     lambda lam, n: update(lam, n.function, MaximumRetryAttempts=1)),
    (LIFECYCLE, "put_invokeconfig_retries_0",
     lambda lam, n: put(lam, n.function, MaximumRetryAttempts=0)),
    (LIFECYCLE, "put_invokeconfig_eventage_60",
     lambda lam, n: put(lam, n.function, MaximumEventAgeInSeconds=60)),
    (LIFECYCLE, "update_invokeconfig_eventage_nochange",
     then(lambda lam, n: put(lam, n.function, MaximumEventAgeInSeconds=60),
          lambda lam, n: update(lam, n.function, MaximumEventAgeInSeconds=60))),
    (LIFECYCLE, "get_invokeconfig",
     then(then(lambda lam, n: put(lam, n.function, MaximumEventAgeInSeconds=60),
               lambda lam, n: update(lam, n.function, MaximumRetryAttempts=1)),
          lambda lam, n: answer(lam.get_function_event_invoke_config, FunctionName=n.function,
                                Qualifier="$LATEST"))),
    (LIFECYCLE, "list_single_invokeconfig",
     then(lambda lam, n: put(lam, n.function, MaximumEventAgeInSeconds=60,
                             MaximumRetryAttempts=1),
          lambda lam, n: answer(lam.list_function_event_invoke_configs,
                                FunctionName=n.function))),
]  # fmt: skip


@pytest.mark.parametrize(
    ("test", "label", "request_"),
    CASES,
    ids=[f"{test.split('::')[-1]}-{label}" for test, label, _ in CASES],
)
def test_each_event_invoke_config_call_is_answered_as_aws_answered_it(
    lam: Any, names: Names, test: str, label: str, request_: Request
) -> None:
    recorded = recording(test, label)

    response = request_(lam, names)

    assert shape(response) == shape(recorded)
    assert mismatches(recorded, response) == []


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"MaximumRetryAttempts": 3}, "Value '3' at 'maximumRetryAttempts' failed to satisfy "
         "constraint: Member must have value less than or equal to 2"),
        ({"MaximumEventAgeInSeconds": 59}, "Value '59' at 'maximumEventAgeInSeconds' failed to "
         "satisfy constraint: Member must have value greater than or equal to 60"),
        ({"MaximumEventAgeInSeconds": 21601}, "Value '21601' at 'maximumEventAgeInSeconds' "
         "failed to satisfy constraint: Member must have value less than or equal to 21600"),
    ],
)  # fmt: skip
def test_limits_out_of_range_are_refused_with_the_models_constraint(
    server: Server, names: Names, settings: dict[str, int], problem: str
) -> None:
    unchecked = server.client(parameter_validation=False)

    response = put(unchecked, names.function, **settings)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "ValidationException"
    assert response["Error"]["Message"] == f"1 validation error detected: {problem}"


def test_update_merges_with_the_stored_config_and_put_replaces_it(lam: Any, names: Names) -> None:
    put(lam, names.function, MaximumRetryAttempts=1, **on("OnFailure", names.arn(names.sink)))

    merged = update(lam, names.function, MaximumEventAgeInSeconds=120)
    replaced = put(lam, names.function, MaximumEventAgeInSeconds=300)

    assert merged["MaximumRetryAttempts"] == 1
    assert merged["MaximumEventAgeInSeconds"] == 120
    assert merged["DestinationConfig"]["OnFailure"] == {"Destination": names.arn(names.sink)}
    assert "MaximumRetryAttempts" not in replaced
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}


def test_a_queue_destination_is_refused_because_lamina_delivers_only_to_functions(
    lam: Any, names: Names
) -> None:
    queue = f"arn:aws:sqs:us-east-1:{names.account}:some-queue"

    response = put(lam, names.function, **on("OnFailure", queue))

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "InvalidParameterValueException"
    assert queue in response["Error"]["Message"]


def test_deleting_a_function_deletes_its_event_invoke_config(lam: Any, sink: str) -> None:
    name = create_function(lam, CODE)
    put(lam, name, MaximumRetryAttempts=0)

    lam.delete_function(FunctionName=name)
    create_function(lam, CODE, FunctionName=name)
    response = answer(lam.get_function_event_invoke_config, FunctionName=name)
    lam.delete_function(FunctionName=name)

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
