"""Signing Lamina's own calls to its API, with botocore's SigV4 as any AWS client signs."""

from __future__ import annotations

from collections.abc import Mapping

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def caller_credentials() -> tuple[tuple[str, str], str]:
    """The caller's AWS credentials and region as the AWS CLI finds them, or the development
    key where none are configured."""
    session = botocore.session.get_session()
    found = session.get_credentials()
    region = session.get_config_variable("region") or "us-east-1"
    if found is None:
        return ("test", "test"), region
    frozen = found.get_frozen_credentials()
    return (frozen.access_key, frozen.secret_key), region


def signed_headers(
    method: str,
    url: str,
    body: bytes,
    credentials: tuple[str, str],
    region: str,
    headers: Mapping[str, str] | None = None,
    service: str = "lambda",
) -> dict[str, str]:
    """The headers (with Authorization and X-Amz-Date) that sign this request now."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(*credentials), service, region).add_auth(request)
    return dict(request.headers.items())
