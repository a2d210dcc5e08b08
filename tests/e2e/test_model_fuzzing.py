"""Requests generated from the botocore Lambda model, with random and malformed fields.

Whatever the fields, signature or account, Lamina answers with a 4xx (or a success), never a
5xx; and a request signed by a second account never reaches the first account's function,
whose name the generated fields often use.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import OperationModel, Shape
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lamina.auth import KeyStore
from tests.conftest import Server, create_function, start_server, stop_server

MODEL = botocore.session.get_session().get_service_model("lambda")
OWNER = ("test", "test")
OWNER_ACCOUNT = "000000000000"
OPERATIONS = sorted(MODEL.operation_names)
SERIALIZER = create_serializer("rest-json", include_validation=False)
# Header values as HTTP carries them: printable ASCII (others are refused by the HTTP parser).
HEADER_TEXT = (
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=200)
    .map(str.strip)
    .filter(bool)
)
TEXT = st.text(max_size=80) | st.sampled_from(["", "fn", "fn:live", "$LATEST", "%2F", ".."])


def values(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values of `shape`'s type, ignoring its constraints, so that most are malformed."""
    kind = shape.type_name
    if kind == "structure":
        members = {
            name: HEADER_TEXT if _in_header(member) else values(member, depth + 1)
            for name, member in shape.members.items()
        }
        if depth > 3 or not members:
            return st.just({})
        return st.fixed_dictionaries({}, optional=members)
    if kind == "list":
        return st.lists(values(shape.member, depth + 1), max_size=3) if depth < 4 else st.just([])
    if kind == "map":
        return st.dictionaries(TEXT, values(shape.value, depth + 1), max_size=3)
    if kind in ("integer", "long"):
        return st.integers(min_value=-(2**40), max_value=2**40)
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return st.binary(max_size=64)
    if kind == "timestamp":
        return st.datetimes()
    return st.sampled_from(shape.enum) | TEXT if shape.enum else TEXT


def _in_header(shape: Shape) -> bool:
    # HTTP carries printable ASCII in headers; the HTTP parser refuses the rest before Lamina.
    return shape.serialization.get("location") == "header" and shape.type_name == "string"


@st.composite
def operation_requests(draw: st.DrawFn) -> tuple[OperationModel, dict[str, Any]]:
    operation = MODEL.operation_model(draw(st.sampled_from(OPERATIONS)))
    shape = operation.input_shape
    params = draw(values(shape)) if shape is not None else {}
    for name in shape.required_members if shape is not None else []:
        params.setdefault(name, draw(values(shape.members[name], 1)))
    return operation, params


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, tuple[str, str]]]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    store = KeyStore(data_dir)
    other = store.create_key(store.create_account("444455556666"))
    store.close()
    running = start_server(data_dir)
    # The owner's function is named as the generated fields name functions most often.
    owner = running.client()
    create_function(owner, "def handler(event, context):\n    return 1\n", FunctionName="fn")
    owner.publish_version(FunctionName="fn")  # type: ignore[attr-defined]
    owner.create_alias(FunctionName="fn", Name="live", FunctionVersion="1")  # type: ignore[attr-defined]
    yield running, other
    stop_server(running)


def send(server: Server, operation: OperationModel, params: dict[str, Any], key: Any) -> Reply:
    """The request sent exactly as signed: http.client, unlike urllib3, keeps dot segments."""
    try:
        request_dict = SERIALIZER.serialize_to_request(params, operation)
    except (TypeError, ValueError, AttributeError, KeyError):
        assume(False)
    prepare_request_dict(request_dict, endpoint_url=server.url)
    request = AWSRequest(
        method=request_dict["method"], url=request_dict["url"],
        data=request_dict["body"], headers=request_dict["headers"],
    )  # fmt: skip
    SigV4Auth(Credentials(*key), "lambda", "us-east-1").add_auth(request)
    prepared = request.prepare()

    parts = urlsplit(prepared.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPConnection(parts.netloc, timeout=60)
    try:
        connection.request(prepared.method, target, prepared.body, dict(prepared.headers.items()))
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def owners_function(server: Server) -> dict[str, Any]:
    """What the owner sees of its function `fn`, or that it is gone."""
    owner = server.client()
    try:
        found = owner.get_function(FunctionName="fn")  # type: ignore[attr-defined]
    except owner.exceptions.ResourceNotFoundException:  # type: ignore[attr-defined]
        return {}
    aliases = owner.list_aliases(FunctionName="fn")["Aliases"]  # type: ignore[attr-defined]
    settings = owner.get_function_event_invoke_config  # type: ignore[attr-defined]
    try:
        invoke_config = settings(FunctionName="fn")["MaximumRetryAttempts"]
    except owner.exceptions.ResourceNotFoundException:  # type: ignore[attr-defined]
        invoke_config = None
    return {
        "revision": found["Configuration"]["RevisionId"],
        "tags": found.get("Tags"),
        "concurrency": found.get("Concurrency"),
        "aliases": aliases,
        "invoke_config": invoke_config,
    }


@dataclass
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=operation_requests(), as_other=st.booleans())
def test_model_generated_requests_never_fail_on_the_server_nor_cross_accounts(
    fuzzed: tuple[Server, tuple[str, str]],
    request: tuple[OperationModel, dict[str, Any]],
    as_other: bool,
) -> None:
    server, other = fuzzed
    operation, params = request

    before = owners_function(server) if as_other else None

    reply = send(server, operation, params, other if as_other else OWNER)

    assert reply.status_code < 500 or reply.status_code == 501, (operation.name, reply.content)
    if as_other:
        assert OWNER_ACCOUNT.encode() not in reply.content, (operation.name, reply.content)
        assert owners_function(server) == before, operation.name
    if reply.status_code >= 400 and reply.content:
        assert "X-Amzn-ErrorType" in reply.headers
        json.loads(reply.content)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    authorization=HEADER_TEXT
    | st.just("AWS4-HMAC-SHA256 ").map(
        lambda head: (
            head + "Credential=test/20240101/us-east-1/lambda/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=00"
        )
    ),
    date=HEADER_TEXT | st.just("20240101T000000Z"),
)
def test_malformed_signatures_are_refused_with_a_403_never_a_server_error(
    fuzzed: tuple[Server, tuple[str, str]], authorization: str, date: str
) -> None:
    server, _ = fuzzed
    headers = {"Authorization": authorization, "X-Amz-Date": date}
    reply = requests.get(f"{server.url}/2015-03-31/functions", headers=headers, timeout=30)

    assert reply.status_code == 403, reply.text
    assert reply.headers["X-Amzn-ErrorType"] in (
        "MissingAuthenticationTokenException", "IncompleteSignatureException",
        "InvalidSignatureException", "UnrecognizedClientException",
    )  # fmt: skip
