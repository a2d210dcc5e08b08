"""The REPORT line of an invoke whose runtime died says how much memory it had used.

Lambda reports the sandbox's memory on every invoke, those that end its runtime included:
an out-of-memory kill shows the whole MemorySize used.
"""

from __future__ import annotations

import base64
import re
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


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from one_worker_platform(tmp_path_factory, "exit-report")


def max_memory_used(lam: Any, name: str) -> tuple[dict, int]:
    reply = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    log = base64.b64decode(reply["LogResult"]).decode()
    used = re.search(r"Max Memory Used: (\d+) MB", log)
    assert used is not None, log
    return reply, int(used.group(1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_runtime_that_exits_after_allocating_reports_the_memory_it_held(
    platform: Server, backend: str
) -> None:
    lam: Any = platform.client()
    name = create_function(
        lam,
        "import os\n"
        "def handler(event, context):\n"
        "    held = bytearray(b'x' * (64 * 1024 * 1024))\n"
        "    os._exit(2)\n",
        MemorySize=256,
        Tags={ISOLATION_TAG: backend},
    )

    reply, used = max_memory_used(lam, name)

    assert reply["FunctionError"] == "Unhandled"
    assert used >= 64


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_runtime_killed_past_its_memory_reports_the_whole_memory_size_used(
    platform: Server, backend: str
) -> None:
    lam: Any = platform.client()
    name = create_function(
        lam,
        "def handler(event, context):\n"
        "    chunks = []\n"
        "    while True:\n"
        "        chunks.append(bytearray(b'x' * (8 * 1024 * 1024)))\n",
        Timeout=30,
        Tags={ISOLATION_TAG: backend},
    )

    reply, used = max_memory_used(lam, name)

    assert "Runtime exited with error: signal: killed" in reply["Payload"].read().decode()
    assert used >= 120
