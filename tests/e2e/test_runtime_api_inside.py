"""The Runtime API the worker serves inside sandboxes' network namespaces: every sandbox's
listener has the same address, and the namespace a request comes from names its sandbox."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.sandbox.network import listen_inside
from lamina.sandbox.runtime_api import RuntimeApiServer
from tests.conftest import FakeSandbox

NEXT = "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next"
CLIENT = f"""
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen({NEXT!r}, timeout=10) as reply:
        print(reply.status, reply.headers["Lambda-Runtime-Aws-Request-Id"], reply.read().decode())
except urllib.error.HTTPError as error:
    print(error.code)
except OSError as error:
    print("refused" if "refused" in str(error) else error)
"""


def _requirements() -> str | None:
    if os.geteuid() != 0:
        return "entering another network namespace needs root"
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


pytestmark = pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))


@pytest.fixture
def namespaces() -> Iterator[list[int]]:
    """Three processes, each alone in a new network namespace whose loopback is up."""
    holders = [
        subprocess.Popen(["unshare", "--net", "--", "sh", "-c", "ip link set lo up && sleep 60"])
        for _ in range(3)
    ]
    try:
        own = os.stat("/proc/self/ns/net").st_ino
        for holder in holders:
            for _ in range(1000):
                if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != own:
                    break
                time.sleep(0.005)
        yield [holder.pid for holder in holders]
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()


async def _ask_from(pid: int) -> str:
    """What a `next` sent to 127.0.0.1:9001 from inside the namespace of `pid` gets."""
    client = await asyncio.create_subprocess_exec(
        "nsenter",
        f"--net=/proc/{pid}/ns/net",
        "--",
        "python3",
        "-I",
        "-c",
        CLIENT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await client.communicate()
    return out.decode().strip()


async def test_each_namespace_reaches_its_own_sandbox_on_the_same_address(
    runtime_api: RuntimeApiServer, namespaces: list[int], tmp_path: Path
) -> None:
    paths = [str(tmp_path / f"{name}.sock") for name in ("a", "b", "c")]
    for path, pid in zip(paths, namespaces, strict=True):
        await runtime_api.open(path)
        await runtime_api.listen(path, listen_inside(pid, "127.0.0.1", 9001))
    sandboxes: list[Any] = [FakeSandbox(paths[0], "a"), FakeSandbox(paths[1], "b")]
    for sandbox in sandboxes:
        await runtime_api.attach(sandbox)
    await runtime_api.shut(paths[2])

    answers = await asyncio.gather(*(_ask_from(pid) for pid in namespaces))

    assert answers[0] == '200 id-a "a"'
    assert answers[1] == '200 id-b "b"'
    # A sandbox whose socket is shut has nothing listening on its loopback any more.
    assert answers[2] == "refused"


async def test_a_listener_without_a_sandbox_answers_gone(
    runtime_api: RuntimeApiServer, namespaces: list[int], tmp_path: Path
) -> None:
    path = str(tmp_path / "blank.sock")
    await runtime_api.open(path)
    await runtime_api.listen(path, listen_inside(namespaces[0], "127.0.0.1", 9001))

    before = await _ask_from(namespaces[0])
    await runtime_api.shut(path)
    after = await _ask_from(namespaces[0])

    assert before == "410"
    assert after == "refused"


def test_a_namespace_that_is_gone_gives_no_listener() -> None:
    holder = subprocess.Popen(["true"])
    holder.wait()

    with pytest.raises(OSError):
        listen_inside(holder.pid, "127.0.0.1", 9001)
