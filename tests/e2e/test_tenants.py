"""Accounts share one Lamina and see nothing of each other: names, ARNs, logs and limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, start_server, stop_server, unique_name
from tests.e2e.test_authentication import admin

WHO = "def handler(event, context):\n    print('ran for', event)\n    return 'mine'\n"


def client(server: Server, key: tuple[str, ...], service: str = "lambda") -> Any:
    """A client signing with `key`: (access key id, secret[, session token])."""
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        aws_session_token=key[2] if len(key) > 2 else None,
        config=Config(retries={"max_attempts": 1}, read_timeout=120),
    )


def refusal(call: Callable[[], object]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    status = error["ResponseMetadata"]["HTTPStatusCode"]
    return status, error["Error"]["Code"], error["Error"].get("Message") or ""


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("tenants") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def other(shared: Server) -> tuple[str, tuple[str, str]]:
    """A second account and a key of it."""
    account = admin(shared, "accounts", "create")
    created = json.loads(admin(shared, "keys", "create", account))
    return account, (created["AccessKeyId"], created["SecretAccessKey"])


@pytest.fixture(scope="module")
def victim(shared: Server) -> tuple[str, str]:
    """A function of the development account that has run once, with a version and an alias."""
    mine = client(shared, ("test", "test"))
    name = create_function(mine, WHO)
    mine.invoke(FunctionName=name, Payload=b'{"n": 1}')
    mine.publish_version(FunctionName=name)
    mine.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    arn = mine.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    return name, arn


def names(lam: Any) -> list[str]:
    return [f["FunctionName"] for f in lam.list_functions()["Functions"]]


def intrusions(lam: Any, target: str) -> list[Callable[[], object]]:
    """Every operation of the Lambda API that names one function, aimed at `target`."""
    return [
        lambda: lam.get_function(FunctionName=target),
        lambda: lam.get_function_configuration(FunctionName=target),
        lambda: lam.invoke(FunctionName=target, Payload=b"{}"),
        lambda: lam.invoke(FunctionName=target, Payload=b"{}", InvocationType="Event"),
        lambda: lam.invoke(FunctionName=target, Payload=b"{}", InvocationType="DryRun"),
        lambda: lam.update_function_configuration(FunctionName=target, Timeout=9),
        lambda: lam.update_function_code(FunctionName=target, ZipFile=b"PK"),
        lambda: lam.put_function_concurrency(FunctionName=target, ReservedConcurrentExecutions=1),
        lambda: lam.get_function_concurrency(FunctionName=target),
        lambda: lam.delete_function_concurrency(FunctionName=target),
        lambda: lam.publish_version(FunctionName=target),
        lambda: lam.list_versions_by_function(FunctionName=target),
        lambda: lam.get_alias(FunctionName=target, Name="live"),
        lambda: lam.list_aliases(FunctionName=target),
        lambda: lam.create_alias(FunctionName=target, Name="mine", FunctionVersion="1"),
        lambda: lam.put_function_event_invoke_config(FunctionName=target, MaximumRetryAttempts=0),
        lambda: lam.get_function_event_invoke_config(FunctionName=target),
        lambda: lam.get_provisioned_concurrency_config(FunctionName=target, Qualifier="live"),
        lambda: lam.delete_function(FunctionName=target),
    ]


def test_another_account_finds_no_function_by_a_name_it_does_not_own(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    account, key = other
    name, _ = victim
    intruder = client(shared, key)

    outcomes = [refusal(attempt) for attempt in intrusions(intruder, name)]

    assert {status for status, _, _ in outcomes} == {404}, outcomes
    assert {code for _, code, _ in outcomes} == {"ResourceNotFoundException"}
    not_found = outcomes[0][2]
    assert not_found == f"Function not found: arn:aws:lambda:us-east-1:{account}:function:{name}"


def test_another_account_is_denied_a_function_by_its_arn_as_lambda_denies_it(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    _, arn = victim
    intruder = client(shared, key)

    outcomes = {refusal(attempt) for attempt in intrusions(intruder, arn)}

    assert outcomes == {(403, "AccessDeniedException", "")}


def test_the_owner_sees_its_function_unchanged_after_the_other_account_tried_everything(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    name, arn = victim
    mine = client(shared, ("test", "test"))
    before = mine.get_function(FunctionName=name)
    for target in (name, arn):
        for attempt in intrusions(client(shared, key), target):
            refusal(attempt)

    after = mine.get_function(FunctionName=name)

    assert after["Configuration"]["RevisionId"] == before["Configuration"]["RevisionId"]
    assert "Concurrency" not in after
    versions = mine.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]
    assert [a["Name"] for a in mine.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    assert json.loads(mine.invoke(FunctionName=name)["Payload"].read()) == "mine"


def test_each_account_lists_only_its_own_functions(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    name, _ = victim
    theirs = create_function(client(shared, key), WHO)

    listed_by_other = names(client(shared, key))
    listed_by_owner = names(client(shared, ("test", "test")))

    assert name not in listed_by_other and theirs in listed_by_other
    assert name in listed_by_owner and theirs not in listed_by_owner


def test_two_accounts_each_have_their_own_function_of_the_same_name(
    shared: Server, other: tuple[str, tuple[str, str]]
) -> None:
    account, key = other
    name = unique_name("same")
    create_function(client(shared, ("test", "test")), "def handler(e, c):\n    return 'A'\n",
                    FunctionName=name)  # fmt: skip
    create_function(client(shared, key), "def handler(e, c):\n    return 'B'\n", FunctionName=name)

    a = client(shared, ("test", "test")).invoke(FunctionName=name)
    b = client(shared, key).invoke(FunctionName=name)
    b_arn = client(shared, key).get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    client(shared, key).delete_function(FunctionName=name)

    assert json.loads(a["Payload"].read()) == "A"
    assert json.loads(b["Payload"].read()) == "B"
    assert b_arn == f"arn:aws:lambda:us-east-1:{account}:function:{name}"
    again = client(shared, ("test", "test")).invoke(FunctionName=name)
    assert json.loads(again["Payload"].read()) == "A"


def test_another_account_reads_no_log_of_a_function_it_does_not_own(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    name, _ = victim
    group = f"/aws/lambda/{name}"
    assert "ran for" in shared.function_log(name)
    logs = client(shared, key, "logs")
    stream = client(shared, ("test", "test"), "logs").describe_log_streams(logGroupName=group)[
        "logStreams"
    ][0]["logStreamName"]

    attempts = [
        lambda: logs.filter_log_events(logGroupName=group),
        lambda: logs.get_log_events(logGroupName=group, logStreamName=stream),
        lambda: logs.describe_log_streams(logGroupName=group),
        lambda: logs.put_retention_policy(logGroupName=group, retentionInDays=1),
    ]
    outcomes = {refusal(attempt)[:2] for attempt in attempts}
    groups = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]

    assert outcomes == {(400, "ResourceNotFoundException")}
    assert groups == []


def test_lamina_logs_with_another_accounts_key_prints_nothing_of_the_function(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    name, _ = victim
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])

    result = subprocess.run(
        [sys.executable, "-m", "lamina", "logs", name, "--endpoint", shared.url],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip

    assert result.returncode != 0
    assert "ran for" not in result.stdout
    assert "does not exist" in result.stderr


def test_each_account_has_its_own_concurrency_limit_and_unreserved_pool(
    shared: Server, other: tuple[str, tuple[str, str]]
) -> None:
    _, key = other
    theirs = create_function(client(shared, key), WHO)
    client(shared, key).put_function_concurrency(
        FunctionName=theirs, ReservedConcurrentExecutions=500
    )

    owner = client(shared, ("test", "test")).get_account_settings()["AccountLimit"]
    intruder = client(shared, key).get_account_settings()["AccountLimit"]

    assert owner["UnreservedConcurrentExecutions"] == owner["ConcurrentExecutions"] == 1000
    assert intruder["UnreservedConcurrentExecutions"] == 500


def qualified_intrusions(lam: Any, target: str) -> list[Callable[[], object]]:
    """Operations that take a qualified name (resource policies are not served: 501 for all)."""
    return [
        lambda: lam.get_function(FunctionName=target),
        lambda: lam.get_function_configuration(FunctionName=target),
        lambda: lam.invoke(FunctionName=target, Payload=b"{}"),
        lambda: lam.invoke(FunctionName=target, Payload=b"{}", InvocationType="Event"),
        lambda: lam.update_function_configuration(FunctionName=target, Timeout=9),
        lambda: lam.get_function_event_invoke_config(FunctionName=target),
        lambda: lam.update_function_event_invoke_config(
            FunctionName=target, MaximumRetryAttempts=1
        ),
        lambda: lam.delete_function_event_invoke_config(FunctionName=target),
        lambda: lam.delete_function(FunctionName=target),
    ]


def satellite_intrusions(lam: Any, target: str) -> list[Callable[[], object]]:
    """Aliases, provisioned concurrency and invoke configs of an unqualified `target`."""
    return [
        lambda: lam.update_alias(FunctionName=target, Name="live", Description="mine"),
        lambda: lam.delete_alias(FunctionName=target, Name="live"),
        lambda: lam.list_provisioned_concurrency_configs(FunctionName=target),
        lambda: lam.put_provisioned_concurrency_config(
            FunctionName=target, Qualifier="live", ProvisionedConcurrentExecutions=1
        ),
        lambda: lam.delete_provisioned_concurrency_config(FunctionName=target, Qualifier="live"),
        lambda: lam.list_function_event_invoke_configs(FunctionName=target),
        lambda: lam.get_function_code_signing_config(FunctionName=target),
    ]


def tag_intrusions(lam: Any, arn: str) -> list[Callable[[], object]]:
    return [
        lambda: lam.list_tags(Resource=arn),
        lambda: lam.tag_resource(Resource=arn, Tags={"owner": "mine"}),
        lambda: lam.untag_resource(Resource=arn, TagKeys=["owner"]),
    ]


def test_another_account_finds_nothing_by_a_qualified_name_nor_behind_the_function(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    name, _ = victim
    intruder = client(shared, key)
    attempts = satellite_intrusions(intruder, name)
    for target in (name, f"{name}:live", f"{name}:1"):
        attempts += qualified_intrusions(intruder, target)

    outcomes = {refusal(attempt)[:2] for attempt in attempts}

    assert outcomes == {(404, "ResourceNotFoundException")}


def test_another_account_is_denied_by_partial_qualified_and_version_arns_and_tags(
    shared: Server, other: tuple[str, tuple[str, str]], victim: tuple[str, str]
) -> None:
    _, key = other
    name, arn = victim
    intruder = client(shared, key)
    partial = arn.split(":", 4)[4]
    attempts = satellite_intrusions(intruder, arn) + satellite_intrusions(intruder, partial)
    for target in (partial, f"{arn}:live", f"{arn}:1", f"{arn}:$LATEST"):
        attempts += qualified_intrusions(intruder, target)
    attempts += tag_intrusions(intruder, arn)

    outcomes = {refusal(attempt) for attempt in attempts}

    assert outcomes == {(403, "AccessDeniedException", "")}
    mine = client(shared, ("test", "test"))
    assert mine.list_tags(Resource=arn)["Tags"] == {}
    assert (
        mine.list_provisioned_concurrency_configs(FunctionName=name)[
            "ProvisionedConcurrencyConfigs"
        ]
        == []
    )
    assert [a["Name"] for a in mine.list_aliases(FunctionName=name)["Aliases"]] == ["live"]


FAILS = "def handler(event, context):\n    raise RuntimeError(event['from'])\n"


def failed_payloads(shared: Server, name: str, account: str, count: int) -> list[str]:
    """The payloads of `account`'s failed events of `name`, once `count` of them are kept."""
    deadline = time.monotonic() + 60
    while True:
        listed = admin(shared, "events", "failed", name, "--account", account, "--json")
        events = [json.loads(line) for line in listed.splitlines() if line.strip()]
        if len(events) >= count or time.monotonic() > deadline:
            return sorted(event["payload"] for event in events)
        time.sleep(0.2)


def test_async_events_of_two_accounts_reach_only_their_own_function_of_a_name(
    shared: Server, other: tuple[str, tuple[str, str]]
) -> None:
    account, key = other
    name = unique_name("events")
    for lam in (client(shared, ("test", "test")), client(shared, key)):
        create_function(lam, FAILS, FunctionName=name)
        lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)

    for who, lam in (("A", client(shared, ("test", "test"))), ("B", client(shared, key))):
        sent = lam.invoke(
            FunctionName=name, InvocationType="Event", Payload=f'{{"from": "{who}"}}'
        )
        assert sent["StatusCode"] == 202

    assert failed_payloads(shared, name, "000000000000", 1) == ['{"from": "A"}']
    assert failed_payloads(shared, name, account, 1) == ['{"from": "B"}']
    assert "RuntimeError: B" not in shared.function_log(name)
