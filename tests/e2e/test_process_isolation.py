"""The process isolation backend: plain processes, offered only when asked for, and loud."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lamina.sandbox.backend import ISOLATION_TAG
from tests.conftest import Server, create_function, start_server, stop_server


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("process") / "data"
    running = start_server(data_dir, "--workers", "1", "--isolation", "process")
    yield running
    stop_server(running)


def test_a_platform_started_with_process_isolation_warns_at_start(platform: Server) -> None:
    assert "ISOLATION IS OFF" in platform.log_text()


def test_functions_run_as_plain_processes_with_the_runtime_api_and_a_warning_per_sandbox(
    platform: Server,
) -> None:
    lam = platform.client()
    name = create_function(
        lam,
        "import os\n"
        "def handler(event, context):\n"
        "    print('hello from', os.getcwd() == os.environ['LAMBDA_TASK_ROOT'])\n"
        "    return {'api': os.environ['AWS_LAMBDA_RUNTIME_API'], 'uid': os.getuid(),\n"
        "            'request': context.aws_request_id}\n",
    )

    reply = lam.invoke(FunctionName=name, Payload=b"{}", LogType="Tail")
    body = json.loads(reply["Payload"].read())
    tail = base64.b64decode(reply["LogResult"]).decode()

    assert "FunctionError" not in reply
    assert body["request"] == reply["ResponseMetadata"]["RequestId"]
    assert body["api"].startswith("127.0.0.1:") and body["api"] != "127.0.0.1:9001"
    assert "hello from True" in tail
    assert "runs with isolation backend 'process'" in platform.function_log(name)
    assert "starts WITHOUT isolation" in platform.log_text()


POST_RESPONSE = """
import json, os, time, urllib.error, urllib.request
def post(request_id, body):
    url = ("http://" + os.environ["AWS_LAMBDA_RUNTIME_API"]
           + f"/2018-06-01/runtime/invocation/{request_id}/response")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, method="POST")) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
def handler(event, context):
    if event.get("hold"):
        with open(event["hold"], "w") as note:
            note.write(context.aws_request_id)
        time.sleep(3)
        return "held to the end"
    with open(event["answer_for"]) as note:
        return post(note.read(), b'"taken"')
"""


def test_each_sandbox_s_runtime_api_port_reaches_only_its_own_invocation(
    platform: Server, tmp_path: Path
) -> None:
    lam = platform.client()
    holder = create_function(lam, POST_RESPONSE, Timeout=30)
    other = create_function(lam, POST_RESPONSE)
    note = tmp_path / "request-id"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            lam.invoke,  # type: ignore[attr-defined]
            FunctionName=holder,
            Payload=json.dumps({"hold": str(note)}).encode(),
        )
        deadline = time.monotonic() + 30
        while not note.exists() or not note.read_text():
            assert time.monotonic() < deadline, "the holding invoke never started"
            time.sleep(0.05)

        # The other sandbox names the held invocation on its own port: not its invocation.
        reply = lam.invoke(  # type: ignore[attr-defined]
            FunctionName=other, Payload=json.dumps({"answer_for": str(note)}).encode()
        )
        status = json.loads(reply["Payload"].read())
        held_answer = json.loads(held.result()["Payload"].read())

    assert status == 400
    assert held_answer == "held to the end"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_timeout_kills_what_the_function_forked_too(platform: Server) -> None:
    lam = platform.client()
    name = create_function(
        lam,
        "import os, time\n"
        "def handler(event, context):\n"
        "    if event.get('fork'):\n"
        "        child = os.fork()\n"
        "        if child == 0:\n"
        "            time.sleep(600)\n"
        "        return child\n"
        "    time.sleep(600)\n",
        Timeout=1,
    )
    forked = lam.invoke(FunctionName=name, Payload=b'{"fork": 1}')
    child = json.loads(forked["Payload"].read())
    assert alive(child)

    reply = lam.invoke(FunctionName=name, Payload=b"{}")

    assert json.loads(reply["Payload"].read())["errorType"] == "Sandbox.Timedout"
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "the forked child outlived its sandbox"
        time.sleep(0.05)


def test_a_function_may_still_choose_a_real_isolation_backend(platform: Server) -> None:
    lam = platform.client()
    name = create_function(
        lam,
        "import os\n"
        "def handler(event, context):\n"
        "    return os.environ['AWS_LAMBDA_RUNTIME_API']\n",
        Tags={ISOLATION_TAG: "namespace"},
    )

    reply = lam.invoke(FunctionName=name, Payload=b"{}")

    assert json.loads(reply["Payload"].read()) == "127.0.0.1:9001"


def test_the_report_gives_the_memory_a_plain_process_runtime_used(platform: Server) -> None:
    lam = platform.client()
    name = create_function(
        lam,
        "held = []\n"
        "def handler(event, context):\n"
        "    held.append(bytearray(b'x' * (48 * 1024 * 1024)))\n"
        "    return len(held)\n",
    )

    reply = lam.invoke(FunctionName=name, LogType="Tail")  # type: ignore[attr-defined]
    log = base64.b64decode(reply["LogResult"]).decode()
    used = int(log.split("Max Memory Used: ")[1].split(" MB")[0])

    assert used >= 48


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The fields after the command's closing parenthesis: state, ppid, pgrp, ...
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:
                members.append(int(entry.name))
    return members


def test_a_runtime_that_exits_by_itself_leaves_no_process_behind(platform: Server) -> None:
    lam = platform.client()
    name = create_function(
        lam,
        "import os, subprocess\n"
        "def handler(event, context):\n"
        "    if event.get('exit'):\n"
        "        os._exit(3)\n"
        "    subprocess.Popen(['sleep', '300'])\n"
        "    return os.getpgid(0)\n",
    )
    group = json.loads(lam.invoke(FunctionName=name)["Payload"].read())  # type: ignore[attr-defined]
    assert len(group_members(group)) == 2  # the runtime and the function's child

    reply = lam.invoke(FunctionName=name, Payload=b'{"exit": true}')  # type: ignore[attr-defined]

    assert reply["FunctionError"] == "Unhandled"
    deadline = time.monotonic() + 10
    while group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(group) == []
