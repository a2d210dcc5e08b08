"""Lamina's own endpoints (/_lamina) serve its parts and admins only; health stays open."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from lamina.auth.platform import TOKEN_HEADER
from lamina.auth.signing import signed_headers
from tests.conftest import Server, create_function, start_server, stop_server
from tests.e2e.test_authentication import admin

OWN = ["/_lamina/v1/state", "/_lamina/v1/workers", "/_lamina/v1/placement/decisions"]


def signed_get(server: Server, path: str, key: tuple[str, str]) -> requests.Response:
    url = server.url + path
    headers = signed_headers("GET", url, b"", key, "us-east-1")
    return requests.get(url, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("own") / "data")
    yield running
    stop_server(running)


def new_key(server: Server, *flags: str) -> tuple[str, str]:
    created = json.loads(admin(server, "keys", "create", "000000000000", *flags))
    return created["AccessKeyId"], created["SecretAccessKey"]


def test_own_endpoints_refuse_unsigned_requests_and_keys_that_are_not_admin(own: Server) -> None:
    plain = new_key(own)

    unsigned = [requests.get(own.url + path, timeout=30) for path in OWN]
    not_admin = [signed_get(own, path, plain) for path in OWN]

    assert {(r.status_code, r.headers["X-Amzn-ErrorType"]) for r in unsigned} == {
        (403, "MissingAuthenticationTokenException")
    }
    assert {(r.status_code, r.headers["X-Amzn-ErrorType"]) for r in not_admin} == {
        (403, "AccessDeniedException")
    }
    assert "--admin" in not_admin[0].json()["Message"]
    assert requests.get(f"{own.url}/_lamina/health", timeout=30).status_code == 200


def test_an_admin_key_and_the_platform_token_are_served(own: Server) -> None:
    chief = new_key(own, "--admin")
    token = {TOKEN_HEADER: own.platform_token()}

    by_admin = [signed_get(own, path, chief) for path in OWN]
    by_platform = [requests.get(own.url + path, headers=token, timeout=30) for path in OWN]

    assert [r.status_code for r in by_admin + by_platform] == [200] * 6
    assert "workers" in by_admin[1].json() and "sandboxes" in by_platform[0].json()


def test_the_fleet_cli_needs_an_admin_key(own: Server) -> None:
    plain, chief = new_key(own), new_key(own, "--admin")

    def listing(key: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, AWS_ACCESS_KEY_ID=key[0], AWS_SECRET_ACCESS_KEY=key[1])
        env.pop("LAMINA_PLATFORM_TOKEN", None)
        return subprocess.run(
            [sys.executable, "-m", "lamina", "worker", "list", "--url", own.url],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip

    refused, served = listing(plain), listing(chief)

    assert refused.returncode == 1 and "403" in refused.stderr
    assert served.returncode == 0 and "worker-1" in served.stdout


def test_code_is_served_by_the_link_get_function_gives_and_not_without_it(own: Server) -> None:
    lam = own.client()
    name = create_function(lam, "def handler(e, c):\n    return 1\n")
    location = lam.get_function(FunctionName=name)["Code"]["Location"]  # type: ignore[attr-defined]
    bare = location.split("?")[0]
    query = urlsplit(location).query
    tampered = f"{bare}?{query.replace('Signature=', 'Signature=0')}"

    assert requests.get(location, timeout=30).status_code == 200
    assert requests.get(bare, timeout=30).status_code == 403
    assert requests.get(tampered, timeout=30).status_code == 403
    token = {TOKEN_HEADER: own.platform_token()}
    assert requests.get(bare, headers=token, timeout=30).status_code == 200
