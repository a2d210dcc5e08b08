"""What a provisioned sandbox tells its function: AWS_LAMBDA_INITIALIZATION_TYPE.

Lambda sets it to `provisioned-concurrency` in the sandboxes provisioned concurrency keeps
and to `on-demand` in those a cold start makes.
"""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Server, create_function

PROBE = (
    "import os\n"
    "def handler(event, context):\n"
    "    return os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']\n"
)


def wait_ready(lam: Any, name: str, qualifier: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier=qualifier)
        if status["Status"] != "IN_PROGRESS":
            assert status["Status"] == "READY", status
            return
        time.sleep(0.2)
    raise AssertionError("provisioned concurrency never became ready")


def test_an_on_demand_sandbox_says_so(server: Server) -> None:
    lam: Any = server.client()
    name = create_function(lam, PROBE)

    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"on-demand"'


def test_a_provisioned_sandbox_says_provisioned_concurrency(server: Server) -> None:
    lam: Any = server.client()
    name = create_function(lam, PROBE)
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier=version, ProvisionedConcurrentExecutions=1
    )
    wait_ready(lam, name, version)

    answer = lam.invoke(FunctionName=name, Qualifier=version)["Payload"].read()

    assert answer == b'"provisioned-concurrency"'
