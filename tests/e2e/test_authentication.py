"""Only signed requests get in: boto3, the AWS CLI and raw HTTP against a real Lamina."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from click.testing import CliRunner

from lamina.auth.signing import signed_headers
from lamina.cli import main
from tests.conftest import Server, start_server, stop_server
from tests.e2e.test_aws_cli import aws

LAMINA = [sys.executable, "-m", "lamina"]


def client(
    server: Server, key: str = "test", secret: str = "test", region: str = "us-east-1"
) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=server.url,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def refused(call: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response
    return error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"], str(caught.value)


def admin(server: Server, *args: str) -> str:
    result = subprocess.run(
        [*LAMINA, *args, "--data-dir", str(server.data_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("auth") / "data")
    yield running
    stop_server(running)


def test_boto3_with_the_development_key_is_served(own: Server) -> None:
    assert client(own).list_functions()["Functions"] == []


def test_a_wrong_secret_is_refused_with_an_invalid_signature(own: Server) -> None:
    status, code, message = refused(client(own, secret="wrong").list_functions)

    assert (status, code) == (403, "InvalidSignatureException")
    assert "The request signature we calculated does not match" in message


def test_an_unknown_key_is_refused_as_an_unrecognized_client(own: Server) -> None:
    status, code, message = refused(client(own, key="AKIANOBODY").list_functions)

    assert (status, code) == (403, "UnrecognizedClientException")
    assert "The security token included in the request is invalid." in message


def test_a_request_signed_for_another_region_is_refused_as_aws_refuses_it(own: Server) -> None:
    status, code, message = refused(client(own, region="eu-west-1").list_functions)

    assert (status, code) == (403, "InvalidSignatureException")
    assert "Credential should be scoped to a valid region." in message


def test_a_request_signed_six_minutes_ago_has_expired(
    own: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: then)

    status, code, message = refused(client(own).list_functions)

    assert (status, code) == (403, "InvalidSignatureException")
    assert "Signature expired:" in message and "(" in message and "- 5 min.)" in message


def test_a_tampered_body_or_path_is_refused_with_aws_error_json(own: Server) -> None:
    url = f"{own.url}/2015-03-31/functions/a/invocations"
    body = b'{"n": 1}'
    headers = signed_headers("POST", url, body, ("test", "test"), "us-east-1")

    other_body = requests.post(url, data=b'{"n": 2}', headers=headers, timeout=30)
    other_path = requests.post(url.replace("/a/", "/b/"), data=body, headers=headers, timeout=30)

    for reply in (other_body, other_path):
        assert reply.status_code == 403
        assert reply.headers["X-Amzn-ErrorType"] == "InvalidSignatureException"
        assert "does not match" in reply.json()["message"]


def test_an_unsigned_request_is_missing_its_authentication_token(own: Server) -> None:
    reply = requests.get(f"{own.url}/2015-03-31/functions", timeout=30)

    assert reply.status_code == 403
    assert reply.headers["X-Amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert reply.json() == {"message": "Missing Authentication Token"}


def test_lamina_own_health_endpoint_needs_no_signature(own: Server) -> None:
    assert requests.get(f"{own.url}/_lamina/health", timeout=30).status_code == 200


def test_the_aws_cli_with_a_wrong_secret_gets_the_invalid_signature(
    own: Server, tmp_path: Path
) -> None:
    result = aws(own, tmp_path, "list-functions", AWS_SECRET_ACCESS_KEY="wrong")

    assert result.returncode != 0
    assert "InvalidSignatureException" in result.stderr


def test_a_key_made_with_the_admin_cli_works_until_disabled_and_deleted(own: Server) -> None:
    created = json.loads(admin(own, "keys", "create", "000000000000"))
    mine = client(own, created["AccessKeyId"], created["SecretAccessKey"])
    assert mine.list_functions()["Functions"] == []
    assert created["AccessKeyId"] in admin(own, "keys", "list", "000000000000")

    admin(own, "keys", "disable", created["AccessKeyId"])
    assert refused(mine.list_functions)[1] == "UnrecognizedClientException"
    admin(own, "keys", "enable", created["AccessKeyId"])
    assert mine.list_functions()["Functions"] == []
    admin(own, "keys", "delete", created["AccessKeyId"])

    assert refused(mine.list_functions)[1] == "UnrecognizedClientException"
    assert created["AccessKeyId"] not in admin(own, "keys", "list")


def test_lamina_refuses_to_listen_beyond_loopback_with_the_development_key() -> None:
    result = CliRunner().invoke(main, ["up", "--host", "0.0.0.0"])

    assert result.exit_code == 2
    assert "--no-default-key" in result.output


def test_with_the_development_key_off_its_requests_are_unrecognized(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", "--no-default-key")
    try:
        status, code, _ = refused(client(running).list_functions)
    finally:
        stop_server(running)

    assert (status, code) == (403, "UnrecognizedClientException")


def test_a_presigned_url_lists_functions_and_a_changed_one_is_refused(own: Server) -> None:
    url = client(own).generate_presigned_url("list_functions", Params={"MaxItems": 5})

    served = requests.get(url, timeout=30)
    changed = requests.get(url.replace("MaxItems=5", "MaxItems=6"), timeout=30)

    assert served.status_code == 200 and "Functions" in served.json()
    assert changed.status_code == 403
    assert changed.headers["X-Amzn-ErrorType"] == "InvalidSignatureException"
