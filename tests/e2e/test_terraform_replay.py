"""The calls Terraform's AWS provider makes for an `aws_lambda_function` (publish = true) with
an `aws_lambda_alias`, replayed through boto3 in the provider's order.

The sequence follows the provider's resource code (internal/service/lambda/function.go and
alias.go): create, the create waiter and read, the alias, a code update with its waiter and
publish, the alias moved to the new version, and destroy with its waiter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import PYTHON_RUNTIME, ROLE, make_zip, unique_name

FAST = {"Delay": 0.1, "MaxAttempts": 300}
LIST_VERSIONS_MAX_ITEMS = 10000


def code(value: str) -> bytes:
    return make_zip({"index.py": f"def handler(event, context):\n    return {value!r}\n"})


def read_function(lam: Any, name: str) -> dict[str, Any]:
    """resourceFunctionRead without a qualifier: GetFunction, the newest version, signing."""
    function = lam.get_function(FunctionName=name)
    concurrency = function.get("Concurrency", {}).get("ReservedConcurrentExecutions", -1)
    pages = lam.get_paginator("list_versions_by_function").paginate(
        FunctionName=name, MaxItems=LIST_VERSIONS_MAX_ITEMS
    )
    versions = [v for page in pages for v in page["Versions"]]
    signing = lam.get_function_code_signing_config(FunctionName=name)
    return {
        "arn": function["Configuration"]["FunctionArn"],
        "tags": function.get("Tags", {}),
        "qualified_arn": versions[-1]["FunctionArn"],
        "version": versions[-1]["Version"],
        "code_signing_config_arn": signing.get("CodeSigningConfigArn", ""),
        "reserved_concurrent_executions": concurrency,
    }


def wait_for(lam: Any, name: str, member: str, pending: str, target: str) -> None:
    """The provider's StateChangeConf over GetFunction, polled without its 5 s delay."""
    for _ in range(FAST["MaxAttempts"]):
        status = lam.get_function(FunctionName=name)["Configuration"].get(member)
        if status == target:
            return
        assert status == pending, status
    pytest.fail(f"{member} never reached {target}")


def test_terraform_create_read_update_and_destroy_of_a_function_with_an_alias(lam: Any) -> None:
    name = unique_name("tf")

    # aws_lambda_function: create
    lam.create_function(
        FunctionName=name, Role=ROLE, Runtime=PYTHON_RUNTIME, Handler="index.handler",
        Code={"ZipFile": code("v1")}, Publish=True, Tags={"managed-by": "terraform"},
    )  # fmt: skip
    lam.get_function(FunctionName=name)
    wait_for(lam, name, "State", "Pending", "Active")
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    created = read_function(lam, name)

    # aws_lambda_alias: create, read (function_name is the function's ARN)
    alias = lam.create_alias(
        FunctionName=created["arn"], Name="live", FunctionVersion=created["version"],
        Description="", RoutingConfig={},
    )  # fmt: skip
    read_alias = lam.get_alias(FunctionName=created["arn"], Name="live")

    # aws_lambda_function: update of the code, publish, read
    lam.update_function_code(FunctionName=name, ZipFile=code("v2"))
    wait_for(lam, name, "LastUpdateStatus", "InProgress", "Successful")
    published = lam.publish_version(FunctionName=name)
    lam.get_waiter("function_updated").wait(
        FunctionName=published["FunctionArn"], Qualifier=published["Version"], WaiterConfig=FAST
    )
    updated = read_function(lam, name)

    # aws_lambda_alias: update to the new version, wait for weights cleared, read
    lam.update_alias(
        FunctionName=created["arn"], Name="live", FunctionVersion=updated["version"],
        Description="", RoutingConfig={},
    )  # fmt: skip
    moved = lam.get_alias(FunctionName=created["arn"], Name="live")
    answer = json.loads(lam.invoke(FunctionName=name, Qualifier="live")["Payload"].read())

    # destroy: the alias, then the function and its waiter
    lam.delete_alias(FunctionName=created["arn"], Name="live")
    lam.delete_function(FunctionName=name)
    with pytest.raises(ClientError) as gone:
        lam.get_function(FunctionName=name)

    assert created["version"] == "1"
    assert created["qualified_arn"] == f"{created['arn']}:1"
    assert created["tags"] == {"managed-by": "terraform"}
    assert created["code_signing_config_arn"] == ""
    assert created["reserved_concurrent_executions"] == 5
    assert alias["AliasArn"] == read_alias["AliasArn"] == f"{created['arn']}:live"
    assert "RoutingConfig" not in read_alias
    assert published["Version"] == updated["version"] == "2"
    assert moved["FunctionVersion"] == "2"
    assert answer == "v2"
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
