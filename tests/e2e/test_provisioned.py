"""Provisioned concurrency: sandboxes kept warm per version or alias, answered as AWS did."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Server, create_function, key, start_server, stop_server, unique_name
from tests.e2e.recorded import renamed
from tests.e2e.test_recorded_shapes import answer
from tests.e2e.test_recorded_versions import HANDLER, Scenario, create, wait_active

KEEP_ALIVE_S = 0.5


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose keep-alive reclaims idle sandboxes within a second."""
    data = tmp_path_factory.mktemp("provisioned") / "data"
    running = start_server(data, "--keep-alive", str(KEEP_ALIVE_S))
    yield running
    stop_server(running)


def wait_ready(lam: Any, name: str, qualifier: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        config = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if config["Status"] != "IN_PROGRESS":
            return config
        time.sleep(0.1)
    pytest.fail("provisioned concurrency never became READY")


def idle_sandboxes(server: Server, name: str) -> int:
    return int(server.state()["sandboxes"]["per_function"].get(key(name), 0))


def sandboxes_once_at_most(server: Server, name: str, limit: int) -> int:
    """Poll until the keep-alive brought `name` down to `limit` sandboxes or fewer."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        count = idle_sandboxes(server, name)
        if count <= limit:
            return count
        time.sleep(0.05)
    pytest.fail(f"{name} kept more than {limit} sandboxes")


def test_provisioned_sandboxes_are_started_and_outlive_the_keep_alive(short_lived: Server) -> None:
    lam: Any = short_lived.client()
    name = create_function(lam, "def handler(event, context):\n    return 'warm'\n")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    put = lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    ready = wait_ready(lam, name, "live")
    invoked = lam.invoke(FunctionName=name, Qualifier="live")
    after_invoke = idle_sandboxes(short_lived, name)
    lam.invoke(FunctionName=name)  # one more sandbox, of $LATEST, not provisioned
    kept = sandboxes_once_at_most(short_lived, name, 2)  # the $LATEST one is reclaimed
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)

    assert (put["Status"], put["RequestedProvisionedConcurrentExecutions"]) == ("IN_PROGRESS", 2)
    assert ready["Status"] == "READY"
    assert ready["AvailableProvisionedConcurrentExecutions"] == 2
    assert json.loads(invoked["Payload"].read()) == "warm"
    assert after_invoke == 2  # the invoke ran in a provisioned sandbox, not a new one
    assert kept == 2
    assert [
        c["FunctionArn"].rsplit(":", 1)[1] for c in listed["ProvisionedConcurrencyConfigs"]
    ] == ["live"]

    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert sandboxes_once_at_most(short_lived, name, 0) == 0


def test_provisioned_concurrency_answers_as_aws_did(server: Server) -> None:
    lam: Any = server.client(parameter_validation=False)
    name = unique_name("recorded-provisioned")
    create(lam, name, **HANDLER)
    wait_active(lam, name)
    missing = unique_name("doesnotexist")

    errors = Scenario("TestLambdaProvisionedConcurrency::test_provisioned_concurrency_exceptions")
    errors.record("publish_version_result", lam.publish_version(FunctionName=name))

    def call(label: str, op: Any, function: str = name, **params: Any) -> None:
        response = answer(op, FunctionName=function, **params)
        if function == missing:
            response = renamed(response, missing, "doesnotexist")
        errors.record(label, response)

    get = lam.get_provisioned_concurrency_config
    delete = lam.delete_provisioned_concurrency_config
    put = lam.put_provisioned_concurrency_config
    call("get_provisioned_config_doesnotexist", get, Qualifier="1")
    call("get_provisioned_functionname_doesnotexist", get, missing, Qualifier="noalias")
    call("get_provisioned_qualifier_doesnotexist", get, Qualifier="noalias")
    call("get_provisioned_version_doesnotexist", get, Qualifier="10")
    call("get_provisioned_latest", get, Qualifier="$LATEST")
    call("list_provisioned_noconfigs", lam.list_provisioned_concurrency_configs)
    call("list_provisioned_functionname_doesnotexist", lam.list_provisioned_concurrency_configs,
         missing)  # fmt: skip
    call("delete_provisioned_functionname_doesnotexist", delete, missing, Qualifier="1")
    call("delete_provisioned_qualifier_doesnotexist", delete, Qualifier="noalias")
    call("delete_provisioned_version_doesnotexist", delete, Qualifier="10")
    call("delete_provisioned_latest", delete, Qualifier="$LATEST")
    call("delete_provisioned_config_doesnotexist", delete, Qualifier="1")
    call("put_provisioned_invalid_param_0", put, Qualifier="1", ProvisionedConcurrentExecutions=0)
    for label, function, qualifier in (
        ("put_provisioned_functionname_doesnotexist_alias", missing, "noalias"),
        ("put_provisioned_functionname_doesnotexist_version", missing, "1"),
        ("put_provisioned_qualifier_doesnotexist", name, "doesnotexist"),
        ("put_provisioned_version_doesnotexist", name, "10"),
        ("put_provisioned_latest", name, "$LATEST"),
    ):
        call(label, put, function, Qualifier=qualifier, ProvisionedConcurrentExecutions=1)

    assert {label: found for label, found in errors.differences.items() if found} == {}


def test_a_version_has_one_provisioned_configuration_its_own_or_its_aliass(server: Server) -> None:
    lam: Any = server.client()
    name = unique_name("recorded-provisioned-lifecycle")
    create(lam, name, **HANDLER)
    wait_active(lam, name)
    run = Scenario("TestLambdaProvisionedConcurrency::test_lambda_provisioned_lifecycle")
    alias = unique_name("alias")

    def named(response: dict[str, Any]) -> dict[str, Any]:
        return renamed(response, alias, "<alias-name>")

    put = lam.put_provisioned_concurrency_config
    run.record("publish_version_result", lam.publish_version(FunctionName=name))
    run.record(
        "create_alias_result",
        named(lam.create_alias(FunctionName=name, Name=alias, FunctionVersion="1")),
    )
    run.record(
        "put_provisioned_on_version",
        put(FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1),
    )
    run.record(
        "put_provisioned_on_alias_versionconflict",
        answer(put, FunctionName=name, Qualifier=alias, ProvisionedConcurrentExecutions=1),
    )
    run.record(
        "delete_provisioned_version",
        lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="1"),
    )
    run.record(
        "get_provisioned_version_postdelete",
        answer(lam.get_provisioned_concurrency_config, FunctionName=name, Qualifier="1"),
    )
    run.record(
        "put_provisioned_on_alias",
        put(FunctionName=name, Qualifier=alias, ProvisionedConcurrentExecutions=1),
    )
    run.record(
        "put_provisioned_on_version_conflict",
        answer(put, FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1),
    )
    run.record("delete_alias_result", lam.delete_alias(FunctionName=name, Name=alias))
    run.record(
        "get_provisioned_alias_postaliasdelete",
        named(answer(lam.get_provisioned_concurrency_config, FunctionName=name, Qualifier=alias)),
    )
    run.record(
        "list_response_postdeletes", lam.list_provisioned_concurrency_configs(FunctionName=name)
    )

    assert {label: found for label, found in run.differences.items() if found} == {}


def test_a_provisioned_sandbox_that_dies_is_replaced(lam: Any) -> None:
    code = (
        "import os, uuid\nSANDBOX = uuid.uuid4().hex\n"
        "def handler(event, context):\n"
        "    if event.get('crash'):\n        os._exit(1)\n"
        "    return SANDBOX\n"
    )
    name = create_function(lam, code)
    lam.publish_version(FunctionName=name)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    wait_ready(lam, name, "1")
    first = json.loads(lam.invoke(FunctionName=name, Qualifier="1")["Payload"].read())

    crashed = lam.invoke(FunctionName=name, Qualifier="1", Payload=b'{"crash": true}')
    replaced = wait_ready(lam, name, "1")
    second = json.loads(lam.invoke(FunctionName=name, Qualifier="1")["Payload"].read())

    assert crashed["FunctionError"] == "Unhandled"
    assert replaced["Status"] == "READY"
    assert replaced["AvailableProvisionedConcurrentExecutions"] == 1
    assert second != first
