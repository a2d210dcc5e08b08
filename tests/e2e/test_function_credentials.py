"""A function's own credentials: present as on Lambda, short-lived, and refused by the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROLE, Server, create_function, start_server, stop_server
from tests.e2e import test_tenants as tenants
from tests.e2e.asyncwatch import wait_until
from tests.e2e.test_tenants import refusal

READ_CREDENTIALS = """
import os, urllib.request

def handler(event, context):
    credentials = {k: v for k, v in os.environ.items()
                   if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    try:
        with urllib.request.urlopen(event["url"], timeout=5) as reply:
            answer = reply.status
    except Exception as exc:
        answer = type(exc).__name__
    return {"credentials": credentials, "answer": answer}
"""


def client(server: Server, credentials: dict[str, str], service: str = "lambda") -> Any:
    """A client signing with the credentials a function found in its environment."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    key = tuple(credentials[name] for name in names if name in credentials)
    return tenants.client(server, key, service)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("credentials") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def function(own: Server) -> tuple[str, dict[str, str], object]:
    """A function, the credentials it found in its environment, and what its request got."""
    lam = own.client()
    name = create_function(lam, READ_CREDENTIALS)
    payload = json.dumps({"url": f"{own.url}/2015-03-31/functions"})
    result = json.loads(lam.invoke(FunctionName=name, Payload=payload)["Payload"].read())  # type: ignore[attr-defined]
    return name, result["credentials"], result["answer"]


def test_a_function_finds_short_lived_credentials_in_its_environment_as_on_lambda(
    function: tuple[str, dict[str, str], object],
) -> None:
    _, credentials, _ = function

    assert set(credentials) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert credentials["AWS_ACCESS_KEY_ID"].startswith("ASIA")
    assert len(credentials["AWS_SESSION_TOKEN"]) > 40


def test_a_function_has_no_network_way_to_the_control_plane(
    function: tuple[str, dict[str, str], object],
) -> None:
    assert function[2] == "URLError"


def test_the_control_plane_refuses_a_functions_credentials_as_aws_refuses_a_bare_role(
    own: Server, function: tuple[str, dict[str, str], object]
) -> None:
    name, credentials, _ = function
    lam = client(own, credentials)
    user = f"arn:aws:sts::000000000000:assumed-role/{ROLE.rsplit('/', 1)[1]}/{name}"
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{name}"

    listing = refusal(lam.list_functions)
    getting = refusal(lambda: lam.get_function(FunctionName=name))
    invoking = refusal(lambda: lam.invoke(FunctionName=name))
    logs = refusal(lambda: client(own, credentials, "logs").describe_log_groups())

    assert listing == (
        403,
        "AccessDeniedException",
        f"User: {user} is not authorized to perform: lambda:ListFunctions on resource: * "
        "because no identity-based policy allows the lambda:ListFunctions action",
    )
    assert getting[:2] == invoking[:2] == (403, "AccessDeniedException")
    assert f"lambda:GetFunction on resource: {arn} because" in getting[2]
    assert f"lambda:InvokeFunction on resource: {arn} because" in invoking[2]
    assert logs[:2] == (400, "AccessDeniedException")
    assert "logs:DescribeLogGroups" in logs[2]


def test_a_functions_key_without_its_session_token_is_unrecognized(
    own: Server, function: tuple[str, dict[str, str], object]
) -> None:
    _, credentials, _ = function
    bare = {k: v for k, v in credentials.items() if k != "AWS_SESSION_TOKEN"}
    forged = dict(credentials, AWS_SESSION_TOKEN=credentials["AWS_SESSION_TOKEN"][:-4] + "AAAA")

    assert refusal(client(own, bare).list_functions)[:2] == (403, "UnrecognizedClientException")
    assert refusal(client(own, forged).list_functions)[:2] == (403, "UnrecognizedClientException")


def test_a_functions_credentials_expire_with_its_sandbox(own: Server) -> None:
    lam = own.client()
    name = create_function(lam, READ_CREDENTIALS)
    reply = lam.invoke(FunctionName=name, Payload=json.dumps({"url": "http://127.0.0.1:1"}))  # type: ignore[attr-defined]
    credentials = json.loads(reply["Payload"].read())["credentials"]
    assert refusal(client(own, credentials).list_functions)[1] == "AccessDeniedException"

    lam.delete_function(FunctionName=name)  # type: ignore[attr-defined]

    expired = wait_until(
        lambda: refusal(client(own, credentials).list_functions)[1] == "ExpiredTokenException",
        what="the credentials of a destroyed sandbox refused as expired",
    )
    assert expired
