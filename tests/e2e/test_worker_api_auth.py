"""A worker's own API obeys only Lamina's parts: the platform token, as the frontend's does.

A worker listens on TCP (loopback for `lamina up`, a fleet address for `lamina worker
--host`). Whoever reaches that port without the token must not start sandboxes for any
account's function, run events in them or destroy them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from lamina.auth.platform import TOKEN_HEADER
from tests.conftest import Server, create_function, start_server, stop_server


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("worker-auth") / "data"
    running = start_server(data_dir, "--workers", "1")
    yield running
    stop_server(running)


def worker_url(platform: Server) -> str:
    workers = platform.signed("GET", "/_lamina/v1/workers").json()["workers"]
    return str(workers[0]["url"])


def function_config(platform: Server, lam: Any, name: str) -> dict:
    """The configuration document the frontend sends a worker, rebuilt from the registry."""
    from lamina.registry.store import Registry

    registry = Registry(platform.data_dir / "registry.db", "000000000000")
    try:
        config = registry.get(name)
        assert config is not None
        return config.to_dict()
    finally:
        registry.close()


def test_a_worker_refuses_to_start_a_sandbox_for_a_caller_without_the_token(
    platform: Server,
) -> None:
    lam: Any = platform.client()
    name = create_function(lam, "def handler(event, context):\n    return 'secret'\n")
    url = worker_url(platform)
    config = function_config(platform, lam, name)

    started = requests.post(
        f"{url}/v1/sandboxes",
        json={"sandbox_id": uuid.uuid4().hex[:16], "config": config},
        timeout=60,
    )

    assert started.status_code == 403
    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"secret"'


def test_a_worker_refuses_to_run_or_destroy_a_sandbox_for_a_caller_without_the_token(
    platform: Server,
) -> None:
    url = worker_url(platform)

    invoked = requests.post(f"{url}/v1/sandboxes/0123456789abcdef/invoke", data=b"{}")
    destroyed = requests.delete(f"{url}/v1/sandboxes/0123456789abcdef")
    forged = requests.delete(
        f"{url}/v1/sandboxes/0123456789abcdef", headers={TOKEN_HEADER: "not-the-token"}
    )

    assert [invoked.status_code, destroyed.status_code, forged.status_code] == [403] * 3


def test_the_token_holder_is_served_and_health_stays_open(platform: Server) -> None:
    url = worker_url(platform)
    token = {TOKEN_HEADER: platform.platform_token()}

    gone = requests.delete(f"{url}/v1/sandboxes/0123456789abcdef", headers=token, timeout=10)
    health = requests.get(f"{url}/v1/health", timeout=10)

    assert gone.status_code == 204
    assert health.status_code == 200
    assert json.loads(health.content)["worker_id"]
