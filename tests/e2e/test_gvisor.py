"""Functions run under the gvisor isolation backend behave as under bubblewrap, and contained.

Every function here is tagged `lamina:isolation=gvisor`; the platform's workers default to
the namespace backend, so these tests also show that the tag chooses the backend.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.sandbox.backend import ISOLATION_TAG
from tests.conftest import (
    Server,
    create_function,
    sandbox_processes,
    start_server,
    stop_server,
)
from tests.e2e.restarts import dead, platform_paused, wait_for_restart

pytestmark = pytest.mark.skipif(
    shutil.which("runsc") is None or os.geteuid() != 0,
    reason="gVisor tests need runsc (apt-get install runsc) and root for its cgroups",
)

GVISOR = {ISOLATION_TAG: "gvisor"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("gvisor") / "data"
    running = start_server(data_dir, "--workers", "1", "--keep-alive", "600")
    yield running
    stop_server(running)


@pytest.fixture
def lam(platform: Server) -> Any:
    return platform.client()


def invoke(lam: Any, name: str, payload: object = None) -> tuple[dict, object]:
    reply = lam.invoke(FunctionName=name, Payload=json.dumps(payload or {}), LogType="Tail")
    return reply, json.loads(reply["Payload"].read() or b"null")


def gvisor_function(lam: Any, code: str, **extra: object) -> str:
    return create_function(lam, code, Tags=GVISOR, **extra)


def test_hello_world_runs_inside_gvisor_with_lambdas_environment(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "import os, platform\n"
        "def handler(event, context):\n"
        "    return {'hello': event['name'], 'uid': os.getuid(), 'cwd': os.getcwd(),\n"
        "            'api': os.environ['AWS_LAMBDA_RUNTIME_API'],\n"
        "            'kernel': open('/proc/version').read(),\n"
        "            'request': context.aws_request_id}\n",
    )

    reply, body = invoke(lam, name, {"name": "you"})

    assert "FunctionError" not in reply
    assert body["hello"] == "you"
    assert body["uid"] == 993
    assert body["cwd"] == "/var/task"
    assert body["api"] == "127.0.0.1:9001"
    assert body["request"] == reply["ResponseMetadata"]["RequestId"]
    # gVisor's Sentry answers for the kernel, not the host's Linux.
    assert body["kernel"] != Path("/proc/version").read_text()


def test_the_runtime_api_answers_on_its_tcp_address_inside(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "import os, urllib.request\n"
        "def handler(event, context):\n"
        "    api = os.environ['AWS_LAMBDA_RUNTIME_API']\n"
        "    url = f'http://{api}/2018-06-01/runtime/invocation/unknown-id/response'\n"
        "    request = urllib.request.Request(url, data=b'{}', method='POST')\n"
        "    try:\n"
        "        urllib.request.urlopen(request)\n"
        "    except urllib.error.HTTPError as error:\n"
        "        return {'status': error.code, 'body': json.loads(error.read())}\n"
        "import json\n",
    )

    _, body = invoke(lam, name)

    assert body["status"] == 400
    assert body["body"]["errorType"] == "InvalidRequestID"


def test_a_handler_error_comes_back_as_lambdas_error_document_with_its_log(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "def handler(event, context):\n    print('about to fail')\n    raise ValueError('nope')\n",
    )

    reply, body = invoke(lam, name)

    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] == "ValueError"
    assert body["errorMessage"] == "nope"
    tail = base64.b64decode(reply["LogResult"]).decode()
    assert "about to fail" in tail
    assert "[ERROR] ValueError: nope" in tail


def test_an_init_error_is_reported_as_under_bubblewrap(lam: Any) -> None:
    name = gvisor_function(lam, "raise RuntimeError('broken at import')\n")

    reply, body = invoke(lam, name)

    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] == "RuntimeError"
    assert "broken at import" in body["errorMessage"]


def test_a_function_that_runs_past_its_timeout_is_stopped(lam: Any) -> None:
    name = gvisor_function(
        lam, "def handler(event, context):\n    while True:\n        pass\n", Timeout=1
    )

    reply, body = invoke(lam, name)

    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")

    _, again = invoke(lam, name)
    assert again["errorType"] == "Sandbox.Timedout"


def test_allocating_past_memory_size_kills_the_runtime_as_lambda_reports_it(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "def handler(event, context):\n"
        "    hoard = []\n"
        "    while True:\n"
        "        hoard.append(bytearray(16 * 1024 * 1024))\n",
        MemorySize=128,
        Timeout=30,
    )

    reply, body = invoke(lam, name)

    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: signal: killed")


def test_the_code_is_read_only_and_secrets_of_the_host_are_out_of_reach(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "import os\n"
        "def attempt(action):\n"
        "    try:\n"
        "        action()\n"
        "        return 'succeeded'\n"
        "    except OSError as error:\n"
        "        return type(error).__name__\n"
        "def handler(event, context):\n"
        "    return {\n"
        "        'task': attempt(lambda: open('/var/task/new.py', 'w')),\n"
        "        'shadow': attempt(lambda: open('/etc/shadow').read()),\n"
        "        'root': attempt(lambda: os.listdir('/root')),\n"
        "        'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),\n"
        "        'tmp': attempt(lambda: open('/tmp/x', 'w').write('ok')),\n"
        "    }\n",
    )

    _, body = invoke(lam, name)

    assert body["task"] in ("OSError", "PermissionError")
    assert body["shadow"] in ("FileNotFoundError", "PermissionError")
    assert body["root"] in ("FileNotFoundError", "PermissionError")
    assert body["tmp"] == "succeeded"
    # Only the runtime and its relay: nothing of the host nor of another sandbox.
    assert max(body["pids"]) < 10
    assert len(body["pids"]) <= 3


def test_a_sandbox_has_no_network_but_its_own_loopback(lam: Any, platform: Server) -> None:
    port = int(platform.url.rsplit(":", 1)[1])
    name = gvisor_function(
        lam,
        "import socket\n"
        "def reach(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close()\n"
        "        return 'connected'\n"
        "    except OSError as error:\n"
        "        return type(error).__name__\n"
        "def handler(event, context):\n"
        "    return {'api': reach('127.0.0.1', event['port']),\n"
        "            'outside': reach('192.0.2.1', 80)}\n",
    )

    _, body = invoke(lam, name, {"port": port})

    assert body["api"] != "connected"
    assert body["outside"] != "connected"


def test_tmp_holds_no_more_than_the_ephemeral_storage(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "import errno\n"
        "def handler(event, context):\n"
        "    written = 0\n"
        "    try:\n"
        "        with open('/tmp/fill', 'wb') as handle:\n"
        "            while written < 2048 * 1024 * 1024:\n"
        "                handle.write(b'x' * 1024 * 1024)\n"
        "                written += 1024 * 1024\n"
        "    except OSError as error:\n"
        "        return {'errno': errno.errorcode[error.errno], 'mb': written // (1024 * 1024)}\n"
        "    return {'errno': None, 'mb': written // (1024 * 1024)}\n",
        EphemeralStorage={"Size": 512},
        MemorySize=1024,
        Timeout=60,
    )

    _, body = invoke(lam, name)

    assert body["errno"] == "ENOSPC"
    assert body["mb"] <= 512


def test_an_unknown_isolation_tag_is_refused_at_create(lam: Any) -> None:
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as caught:
        create_function(lam, "def handler(e, c):\n    return 1\n", Tags={ISOLATION_TAG: "vm"})

    assert "namespace, gvisor, process" in str(caught.value)


def test_a_backend_no_worker_offers_is_refused_at_tag_time(lam: Any) -> None:
    name = create_function(lam, "def handler(e, c):\n    return 1\n")
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]

    with pytest.raises(lam.exceptions.InvalidParameterValueException) as caught:
        lam.tag_resource(Resource=arn, Tags={ISOLATION_TAG: "process"})

    assert "No Lamina worker offers the isolation backend process" in str(caught.value)


def test_tagging_a_function_moves_its_next_sandbox_to_gvisor(lam: Any) -> None:
    name = create_function(lam, "def handler(e, c):\n    return open('/proc/version').read()\n")
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    _, before = invoke(lam, name)

    lam.tag_resource(Resource=arn, Tags=GVISOR)
    _, after = invoke(lam, name)

    assert before == Path("/proc/version").read_text()
    assert after != before


# The same functions under bubblewrap and under gVisor give the same answers and logs.

SAME_UNDER_BOTH = {
    "answer": "def handler(event, context):\n    return {'ok': event}\n",
    "handler error": "def handler(event, context):\n    raise KeyError('missing')\n",
    "init error": "import no_such_module\ndef handler(event, context):\n    return 1\n",
    "exit": "import os\ndef handler(event, context):\n    os._exit(3)\n",
    "crash": "import os, signal\ndef handler(event, context):\n"
    "    os.kill(os.getpid(), signal.SIGSEGV)\n",
    "logging": "import logging\nlogging.getLogger().setLevel(logging.INFO)\n"
    "def handler(event, context):\n    logging.info('via telemetry')\n    print('via stdout')\n"
    "    return 1\n",
}


def normalised(reply: dict, body: object) -> tuple[object, str | None, list[str]]:
    """An answer with what differs from run to run (ids, durations, memory) blanked out."""
    text = json.dumps(body)
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", text)
    log = base64.b64decode(reply["LogResult"]).decode()
    log = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "ID", log)
    log = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z", "TIME", log)
    lines = [line for line in log.splitlines() if not line.startswith(("REPORT", "INIT_START"))]
    return json.loads(text), reply.get("FunctionError"), lines


@pytest.mark.parametrize("case", sorted(SAME_UNDER_BOTH))
def test_a_function_answers_and_logs_alike_under_bubblewrap_and_gvisor(
    lam: Any, case: str
) -> None:
    code = SAME_UNDER_BOTH[case]
    under_namespace = create_function(lam, code, Tags={ISOLATION_TAG: "namespace"})
    under_gvisor = gvisor_function(lam, code)

    namespace = normalised(*invoke(lam, under_namespace, {"n": 1}))
    gvisor = normalised(*invoke(lam, under_gvisor, {"n": 1}))

    assert gvisor == namespace


# A worker killed with SIGKILL leaves nothing behind once it has started again.


def running_containers(state: Path) -> list[str]:
    listed = subprocess.run(
        ["runsc", "--root", str(state), "list", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def worker_pid(data_dir: Path) -> int:
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmdline and str(data_dir).encode() in b" ".join(cmdline):
            return int(entry.name)
    raise AssertionError("no worker process found")


def test_a_worker_killed_with_sigkill_leaves_no_gvisor_sandbox_after_its_restart(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    platform = start_server(data_dir, "--workers", "1")
    state_dir = data_dir / "workers" / "worker-1"
    runsc_state = state_dir / "isolation" / "gvisor" / "state"
    try:
        lam = platform.client()
        names = [gvisor_function(lam, "def handler(e, c):\n    return 1\n") for _ in range(3)]
        for name in names:
            invoke(lam, name)
        # The three sandboxes, and the gVisor blanks of the pool the first one asked for.
        assert len(running_containers(runsc_state)) >= 3

        worker = worker_pid(data_dir)
        with platform_paused(platform):
            os.kill(worker, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while not dead(worker) or any("runsc" in p for p in sandbox_processes(data_dir)):
                assert time.monotonic() < deadline, sandbox_processes(data_dir)
                time.sleep(0.05)
            left = running_containers(runsc_state)
            assert len(left) >= 3

        wait_for_restart(platform, "worker-1", worker, lambda: worker_pid(data_dir))
        assert running_containers(runsc_state) == []
        assert not [p for p in sandbox_processes(data_dir) if "runsc" in p]
        for container in left:
            for pattern in (f"lamina-gvisor-{container}", f"*/lamina-gvisor-{container}"):
                assert not any(Path("/sys/fs/cgroup").glob(pattern))
    finally:
        assert stop_server(platform) == 0


# Escape probes: each attempt fails inside gVisor.

PROBES = """
import ctypes, errno, os, signal, socket

libc = ctypes.CDLL(None, use_errno=True)


def outcome(result):
    return "succeeded" if result == 0 else errno.errorcode[ctypes.get_errno()]


def attempt(action):
    try:
        action()
        return "succeeded"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))


def handler(event, context):
    outside = event["outside_pid"]
    return {
        "mount": outcome(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "init_module": outcome(libc.syscall(175, None, 0, b"")),
        "finit_module": outcome(libc.syscall(313, -1, b"", 0)),
        "ptrace": outcome(libc.ptrace(16, outside, None, None)),
        "signal": attempt(lambda: os.kill(outside, signal.SIGKILL)),
        "code": attempt(lambda: os.listdir(event["code_dir"])),
        "data": attempt(lambda: os.listdir(event["data_dir"])),
        "raw_socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)),
    }
"""


def test_escape_attempts_from_inside_gvisor_all_fail(lam: Any, platform: Server) -> None:
    name = gvisor_function(lam, PROBES)
    # Where the worker keeps every function's code on the host.
    code_dir = platform.data_dir / "workers" / "worker-1" / "code"

    _, body = invoke(
        lam,
        name,
        {
            "outside_pid": platform.process.pid,
            "code_dir": str(code_dir),
            "data_dir": str(platform.data_dir),
        },
    )

    assert body["mount"] == "EPERM"
    assert body["init_module"] in ("EPERM", "ENOSYS")
    assert body["finit_module"] in ("EPERM", "ENOSYS")
    # The seccomp rules refuse ptrace before gVisor looks for the process.
    assert body["ptrace"] == "EPERM"
    assert body["signal"] == "ESRCH"
    assert body["code"] == "ENOENT"
    assert body["data"] == "ENOENT"
    assert body["raw_socket"] == "EPERM"


def test_a_fork_bomb_ends_its_own_sandbox_while_other_functions_keep_answering(
    lam: Any,
) -> None:
    bomb = gvisor_function(
        lam,
        "import os, time\n"
        "def handler(event, context):\n"
        "    while True:\n"
        "        try:\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(600)\n"
        "        except OSError:\n"
        "            pass\n",
        Timeout=30,
    )
    bystander = gvisor_function(lam, "def handler(event, context):\n    return 'still here'\n")
    invoke(lam, bystander)

    reply, body = invoke(lam, bomb)

    assert reply["FunctionError"] == "Unhandled"
    assert body["errorType"] in ("Runtime.ExitError", "Sandbox.Timedout")
    assert invoke(lam, bystander)[1] == "still here"


def test_a_child_left_running_dies_with_its_sandbox(lam: Any) -> None:
    name = gvisor_function(
        lam,
        "import os, time\n"
        "def handler(event, context):\n"
        "    if event.get('spin'):\n"
        "        while True:\n"
        "            pass\n"
        "    beats = os.path.exists('/tmp/beat')\n"
        "    if event.get('fork') and os.fork() == 0:\n"
        "        while True:\n"
        "            open('/tmp/beat', 'a').write('.')\n"
        "            time.sleep(0.05)\n"
        "    return beats\n",
        Timeout=1,
    )
    invoke(lam, name, {"fork": True})
    # A fork under gVisor at 128 MB's CPU share takes a good part of a second on a busy host.
    deadline = time.monotonic() + 30
    while not invoke(lam, name)[1]:
        assert time.monotonic() < deadline, "the child never beat in its own sandbox"

    _, timed_out = invoke(lam, name, {"spin": True})
    _, beats_in_a_new_sandbox = invoke(lam, name)

    assert timed_out["errorType"] == "Sandbox.Timedout"
    assert beats_in_a_new_sandbox is False
