"""Variables Lambda sets but lets a function override: LANG, TZ, PATH, LD_LIBRARY_PATH.

Lambda reserves the variables that describe the function and its runtime (CreateFunction
refuses them); the locale, time zone and search paths it sets only as defaults, and a
function's own values replace them. Under every backend, from a blank sandbox or cold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lamina.sandbox.backend import ISOLATION_TAG
from tests.conftest import (
    BACKENDS,
    Server,
    create_function,
    one_worker_platform,
)

PROBE = (
    "import os, time\n"
    "def handler(event, context):\n"
    "    names = ('LANG', 'TZ', 'PATH', 'LD_LIBRARY_PATH', 'AWS_XRAY_CONTEXT_MISSING')\n"
    "    return {'env': {n: os.environ.get(n) for n in names},\n"
    "            'zone': time.strftime('%Z', time.localtime(0))}\n"
)

OVERRIDES = {
    "LANG": "C.UTF-8",
    "TZ": "America/New_York",
    "PATH": "/var/task/bin:/usr/bin:/bin",
    "LD_LIBRARY_PATH": "/var/task/lib:/usr/lib",
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from one_worker_platform(tmp_path_factory, "function-environment")


def seen(lam: Any, name: str) -> dict:
    reply = lam.invoke(FunctionName=name, Payload=b"{}")
    body = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, body
    return body


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_function_sees_its_own_locale_time_zone_and_paths(
    platform: Server, backend: str
) -> None:
    lam: Any = platform.client()
    name = create_function(
        lam, PROBE, Environment={"Variables": OVERRIDES}, Tags={ISOLATION_TAG: backend}
    )

    body = seen(lam, name)

    assert body["env"] == OVERRIDES
    assert body["zone"] == "EST"


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_its_own_values_a_function_sees_lambdas(platform: Server, backend: str) -> None:
    lam: Any = platform.client()
    name = create_function(lam, PROBE, Tags={ISOLATION_TAG: backend})

    body = seen(lam, name)

    assert body["env"]["LANG"] == "en_US.UTF-8"
    assert body["env"]["TZ"] == ":UTC"
    assert body["env"]["PATH"] == "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
    assert body["env"]["AWS_XRAY_CONTEXT_MISSING"] == "LOG_ERROR"
    assert body["zone"] == "UTC"
