"""Asynchronous invokes on a real Lamina: retries, destinations, throttles, failed events.

The platform here runs with Lambda's retry delays shrunk a hundredfold (one minute becomes
0.6 s) so that a test sees all retries of an event; ages, leases and timeouts are real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, key, start_server, stop_server
from tests.e2e.asyncwatch import (
    FAILING,
    MARKER,
    RECORD,
    arn,
    function_log,
    records,
    runs,
    wait_until,
)


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("lamina-async") / "data"
    running = start_server(data_dir, "--event-retry-scale", "0.01")
    yield running
    stop_server(running)


@pytest.fixture
def lam(fast: Server) -> Any:
    return fast.client()


def send(lam: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
    response = lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps(event))
    assert response["StatusCode"] == 202
    return response


def with_destination(lam: Any, code: str, kind: str) -> tuple[str, str]:
    """A function whose `kind` destination is a new function that prints what it receives."""
    sink = create_function(lam, RECORD)
    name = create_function(lam, code)
    lam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={kind: {"Destination": arn(sink)}}
    )
    return name, sink


def test_a_raising_handler_runs_three_times_then_its_record_goes_to_on_failure(
    lam: Any, fast: Server
) -> None:
    name, sink = with_destination(lam, FAILING, "OnFailure")

    response = send(lam, name, {"message": "m-1"})

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    [record] = wait_until(lambda: records(fast.data_dir, sink), what="the failure record")
    assert runs(fast.data_dir, name) == [[request_id]] * 3
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": f"{arn(name)}:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == {"message": "m-1"}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorMessage"] == "intentional failure"
    assert record["responsePayload"]["requestId"] == request_id


def test_a_success_goes_to_on_success_with_the_functions_answer(lam: Any, fast: Server) -> None:
    name, sink = with_destination(lam, MARKER, "OnSuccess")

    send(lam, name, {"id": "ok-1"})

    [record] = wait_until(lambda: records(fast.data_dir, sink), what="the success record")
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"id": "ok-1"}


def test_reserved_concurrency_of_zero_sends_events_to_on_failure_without_running_them(
    lam: Any, fast: Server
) -> None:
    name, sink = with_destination(lam, MARKER, "OnFailure")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)

    send(lam, name, {"id": "zero"})

    [record] = wait_until(lambda: records(fast.data_dir, sink), what="the record")
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == {"id": "zero"}
    assert runs(fast.data_dir, name) == []


def test_events_throttled_by_reserved_concurrency_are_delayed_and_then_run(
    lam: Any, fast: Server
) -> None:
    name = create_function(lam, MARKER, Timeout=10)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)

    for index in range(4):
        send(lam, name, {"id": f"t-{index}", "hold": 0.5})

    wait_until(lambda: len(runs(fast.data_dir, name)) >= 4, what="four runs")
    ids = sorted(words[1] for words in runs(fast.data_dir, name))
    assert ids == ["t-0", "t-1", "t-2", "t-3"]
    assert f"event retry function={key(name)}" in fast.log_text()
    assert "kind=throttled" in fast.log_text()


def test_a_failed_event_with_no_destination_is_listed_and_replayed_by_the_cli(
    lam: Any, fast: Server
) -> None:
    name = create_function(lam, FAILING)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    response = send(lam, name, {"keep": "me"})
    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]

    listed = wait_until(lambda: failed(fast, name), what="the failed event")
    replayed = cli(fast, "replay", name)
    wait_until(lambda: len(runs(fast.data_dir, name)) == 2, what="the replayed run")

    [doc] = listed
    assert doc["requestId"] == request_id
    assert doc["condition"] == "RetriesExhausted"
    assert doc["approximateInvokeCount"] == 1
    assert json.loads(doc["payload"]) == {"keep": "me"}
    assert replayed.strip() == "replayed 1 event"
    assert runs(fast.data_dir, name) == [[request_id], [request_id]]
    wait_until(lambda: failed(fast, name), what="the event failed again")


def test_the_state_endpoint_reports_queue_depth_age_and_retries_per_function(
    lam: Any, fast: Server
) -> None:
    name = create_function(lam, FAILING)
    lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=2)

    send(lam, name, {})
    wait_until(lambda: len(runs(fast.data_dir, name)) >= 2, what="a retry")
    counters = wait_until(lambda: fast.state()["events"].get(key(name)), what="the counters")

    assert counters["queued"] == 1
    assert counters["retries"] >= 1
    assert counters["oldest_age_s"] > 0


def test_an_event_invoke_of_a_missing_function_is_not_found_not_accepted(lam: Any) -> None:
    with pytest.raises(ClientError) as caught:
        lam.invoke(FunctionName="no-such-function", InvocationType="Event", Payload=b"{}")

    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Code"] == "ResourceNotFoundException"


def test_an_event_payload_over_one_megabyte_is_refused_with_413(lam: Any, fast: Server) -> None:
    name = create_function(lam, MARKER)
    payload = json.dumps({"pad": "x" * (1024 * 1024)})

    reply = fast.signed(
        "POST",
        f"/2015-03-31/functions/{name}/invocations",
        payload,
        **{"X-Amz-Invocation-Type": "Event"},
    )

    assert reply.status_code == 413
    assert reply.headers["X-Amzn-ErrorType"] == "RequestEntityTooLargeException"
    assert "1048576 bytes" in reply.json()["Message"]


def failed(server: Server, name: str) -> list[dict[str, Any]]:
    out = cli(server, "failed", name, "--json")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def cli(server: Server, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "lamina", "events", *args, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_twenty_second_handler_with_the_default_lease_runs_once(lam: Any, fast: Server) -> None:
    name = create_function(lam, MARKER, Timeout=30)

    started = time.monotonic()
    send(lam, name, {"id": "long", "hold": 20})

    # The log store receives an invocation's lines when it ends.
    ended = lambda: "REPORT RequestId" in function_log(fast.data_dir, name)  # noqa: E731
    wait_until(ended, seconds=45, what="the end")
    assert time.monotonic() - started > 19
    assert len(runs(fast.data_dir, name)) == 1
    wait_until(lambda: key(name) not in fast.state()["events"], what="the event settled")
    assert len(runs(fast.data_dir, name)) == 1


def test_an_alias_has_its_own_event_invoke_config_and_events_to_it_obey_it(
    lam: Any, fast: Server
) -> None:
    sink = create_function(lam, RECORD)
    name = create_function(lam, FAILING)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_event_invoke_config(
        FunctionName=name,
        Qualifier="live",
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": arn(sink)}},
    )

    response = lam.invoke(
        FunctionName=name, Qualifier="live", InvocationType="Event", Payload=b"{}"
    )

    request_id = response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    [record] = wait_until(lambda: records(fast.data_dir, sink), what="the failure record")
    assert record["requestContext"]["requestId"] == request_id
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"]["executedVersion"] == version
    with pytest.raises(ClientError) as caught:
        lam.get_function_event_invoke_config(FunctionName=name)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
