"""Signing Lamina's own calls to its API, with botocore's SigV4 as any AWS client signs."""

from __future__ import annotations

from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


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
