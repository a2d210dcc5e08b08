"""Blank sandboxes: a function served from the worker's pool behaves exactly as one whose
sandbox started cold, and a pooled sandbox never serves two functions.

Two platforms run side by side: one whose workers keep a pool (`--sandbox-pool 2`), one
without (`--sandbox-pool 0`, every sandbox starts cold). The same functions run on both, and
what each can observe of its sandbox must be the same.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lamina.sandbox import gvisor, leftovers
from lamina.sandbox.cgroups import CgroupTree
from lamina.sandbox.hostids import HostIds
from tests.conftest import (
    Server,
    create_function,
    start_server,
    stop_server,
)

WAIT_S = 30
# How precisely a sandbox's start time is known (the kernel counts in clock ticks).
CLOCK_TICK_S = 0.02

PROBE = r"""
import os, sys, time

STARTED = time.time()  # when the module was imported: the init phase


def sandbox_started():
    # pid 1 of the sandbox is bubblewrap's reaper: it started with the sandbox.
    with open("/proc/1/stat") as handle:
        ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def handler(event, context):
    if event.get("case") == "mark":
        with open("/tmp/mark", "w") as handle:
            handle.write(context.function_name)
    if event.get("case") == "fail":
        raise ValueError("boom")
    if event.get("case") == "sleep":
        time.sleep(5)
    env = dict(os.environ)
    # The log stream and credentials are each sandbox's own; the trace id each invoke's.
    for per_sandbox_or_invoke in (
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "_X_AMZN_TRACE_ID",
    ):
        env.pop(per_sandbox_or_invoke)
    task = {name: oct(os.lstat("/var/task/" + name).st_mode) for name in os.listdir("/var/task")}
    return {
        "env": env,
        "argv": sys.argv,
        "main": sys.modules["__main__"].__file__,
        "path": sys.path,
        "modules": sorted(sys.modules),
        "task": task,
        "task_mode": oct(os.stat("/var/task").st_mode),
        "task_writable": os.access("/var/task", os.W_OK),
        "cwd": os.getcwd(),
        "ids": [os.getuid(), os.getgid()],
        "tmp": sorted(os.listdir("/tmp")),
        "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "fds": len(os.listdir("/proc/self/fd")),
        "pid_namespace": os.readlink("/proc/self/ns/pid"),
        "sandbox_started": sandbox_started(),
        "imported": STARTED,
    }
"""
FILES = {"index.py": PROBE, "lib/data.txt": "data\n", "run.sh": "#!/bin/sh\necho hi\n"}

# Escape probes, run in a sandbox that was a blank and in a cold one: each layer must hold.
LIMITS_PROBE = (
    PROBE.split("def handler")[0]
    + r"""
import ctypes, ctypes.util, socket
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def handler(event, context):
    hoard = [bytearray(16 << 20) for _ in range(event.get("hoard_mb", 0) // 16)]
    os.makedirs("/tmp/m", exist_ok=True)
    mounted = libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None)
    return {
        "hoarded_mb": 16 * len(hoard),
        "mount": ctypes.get_errno() if mounted == -1 else 0,
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "sandbox_started": sandbox_started(),
    }
"""
)

CUSTOM_BOOTSTRAP = r"""#!/usr/bin/env python3
import json, os, sys, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
HIDDEN = ("AWS_LAMBDA_LOG_STREAM_NAME", "_LAMBDA_TELEMETRY_LOG_FD", "AWS_ACCESS_KEY_ID",
          "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
while True:
    with urllib.request.urlopen(API + "/invocation/next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
    env = {k: v for k, v in os.environ.items() if k not in HIDDEN}
    fds = len(os.listdir("/proc/self/fd"))
    body = json.dumps({"env": env, "argv": sys.argv, "fds": fds}).encode()
    url = API + "/invocation/" + request_id + "/response"
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read()
"""


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    pooled = start_server(tmp_path_factory.mktemp("pooled") / "data", "--sandbox-pool", "2")
    try:
        cold = start_server(tmp_path_factory.mktemp("cold") / "data", "--sandbox-pool", "0")
    except BaseException:
        stop_server(pooled)
        raise
    yield {"pooled": pooled, "cold": cold}
    stop_server(pooled)
    stop_server(cold)


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.05)


def processes_of(data_dir: Path) -> list[str]:
    """Command lines of live processes of the platform kept in `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline:
            found.append(cmdline)
    return found


def blanks(server: Server, network: str | None = None) -> list[str]:
    """Blank sandboxes of the platform; of one network mode if given (only `outbound` ones
    bind a resolv.conf)."""
    found = [cmd for cmd in processes_of(server.data_dir) if "--blank" in cmd]
    if network is not None:
        found = [cmd for cmd in found if ("resolv.conf" in cmd) == (network == "outbound")]
    return found


def invoke(server: Server, name: str, event: dict | None = None) -> dict:
    response = server.client().invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail"
    )
    return {
        "error": response.get("FunctionError"),
        "payload": json.loads(response["Payload"].read()),
        "log": base64.b64decode(response["LogResult"]).decode(),
    }


def deploy(server: Server, name: str, files: dict = FILES, **extra: object) -> float:
    """Create the function, once the platform's pool holds a blank if it keeps one; when
    it was created (its sandbox has not started yet, unless it was a blank)."""
    if "pooled" in server.data_dir.parts[-2]:
        until(lambda: bool(blanks(server)))
    create_function(server.client(), files, FunctionName=name, **extra)
    return time.time()


def same_everywhere(platforms: dict[str, Server], name: str, **extra: object) -> dict:
    """Deploy and invoke `name` on both platforms; their answers by platform."""
    answers = {}
    for kind, server in platforms.items():
        created = deploy(server, name, **extra)
        answers[kind] = invoke(server, name)
        answers[kind]["created"] = created
    return answers


def test_a_pooled_sandbox_shows_a_function_exactly_what_a_cold_one_shows(
    platforms: dict[str, Server],
) -> None:
    answers = same_everywhere(
        platforms, "probe", Environment={"Variables": {"TABLE": "orders", "PYTHONPATH": "/x"}}
    )
    pooled, cold = answers["pooled"]["payload"], answers["cold"]["payload"]

    # The pooled sandbox started before its function existed; the cold one after.
    assert pooled.pop("sandbox_started") < answers["pooled"]["created"]
    assert cold.pop("sandbox_started") > answers["cold"]["created"] - CLOCK_TICK_S
    for volatile in ("imported", "pid_namespace"):
        pooled.pop(volatile), cold.pop(volatile)
    assert pooled == cold
    assert pooled["env"]["TABLE"] == "orders"
    assert pooled["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "probe"
    assert pooled["argv"] == ["/var/runtime/bootstrap.py"]
    assert sorted(pooled["task"]) == ["index.py", "lib", "run.sh"]
    assert pooled["task_writable"] is False
    assert pooled["tmp"] == []


def test_a_pooled_sandbox_logs_its_init_and_report_as_a_cold_one_does(
    platforms: dict[str, Server],
) -> None:
    answers = same_everywhere(platforms, "logged")

    def shape(log: str) -> str:
        return re.sub(r"[0-9a-f-]{36}|[\d.]+ ms|\d+ MB", "X", log)

    assert shape(answers["pooled"]["log"]) == shape(answers["cold"]["log"])
    assert "Init Duration" in answers["pooled"]["log"]


@pytest.mark.parametrize(
    ("files", "handler", "error_type"),
    [
        ({"index.py": "import nosuchmodule\n"}, "index.handler", "Runtime.ImportModuleError"),
        ({"index.py": "x = 1\n"}, "index.handler", "Runtime.HandlerNotFound"),
        ({"index.py": "raise RuntimeError('init')\n"}, "index.handler", "RuntimeError"),
    ],
)
def test_init_errors_in_a_pooled_sandbox_answer_as_in_a_cold_one(
    platforms: dict[str, Server], files: dict, handler: str, error_type: str
) -> None:
    name = f"init-{error_type.replace('.', '-')}"
    answers = {}
    for kind, server in platforms.items():
        deploy(server, name, files, handler=handler)
        answers[kind] = invoke(server, name)

    assert answers["pooled"]["error"] == answers["cold"]["error"] == "Unhandled"
    assert answers["pooled"]["payload"] == answers["cold"]["payload"]
    assert answers["pooled"]["payload"]["errorType"] == error_type


def test_handler_errors_and_timeouts_in_a_pooled_sandbox_answer_as_in_a_cold_one(
    platforms: dict[str, Server],
) -> None:
    answers = {}
    for kind, server in platforms.items():
        deploy(server, "failing", Timeout=1)
        failed = invoke(server, "failing", {"case": "fail"})
        timed_out = invoke(server, "failing", {"case": "sleep"})
        after = invoke(server, "failing")
        answers[kind] = (failed, timed_out, after)

    pooled, cold = answers["pooled"], answers["cold"]
    assert pooled[0]["payload"]["errorType"] == cold[0]["payload"]["errorType"] == "ValueError"
    assert pooled[0]["payload"]["stackTrace"] == cold[0]["payload"]["stackTrace"]
    assert pooled[1]["payload"]["errorType"] == cold[1]["payload"]["errorType"]
    assert pooled[1]["payload"]["errorType"] == "Sandbox.Timedout"
    assert pooled[2]["error"] is None and pooled[2]["payload"]["env"]["AWS_LAMBDA_FUNCTION_NAME"]


def test_a_custom_runtime_starts_from_a_pooled_sandbox_as_from_a_cold_one(
    platforms: dict[str, Server],
) -> None:
    files = {"bootstrap": CUSTOM_BOOTSTRAP}
    answers = {}
    for kind, server in platforms.items():
        client = server.client()
        if kind == "pooled":
            until(lambda server=server: bool(blanks(server)))  # type: ignore[misc]
        client.create_function(  # type: ignore[attr-defined]
            FunctionName="custom", Runtime="provided.al2023", Handler="x",
            Role="arn:aws:iam::000000000000:role/r", Code={"ZipFile": _executable_zip(files)},
            Environment={"Variables": {"GREETING": "hello"}},
        )  # fmt: skip
        client.get_waiter("function_active_v2").wait(  # type: ignore[attr-defined]
            FunctionName="custom", WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
        answers[kind] = invoke(server, "custom")

    assert answers["pooled"]["error"] is None
    assert answers["pooled"]["payload"] == answers["cold"]["payload"]
    assert answers["pooled"]["payload"]["env"]["GREETING"] == "hello"
    assert "AWS_EXECUTION_ENV" not in answers["pooled"]["payload"]["env"]
    assert answers["pooled"]["payload"]["argv"] == ["/var/task/bootstrap"]


def test_two_functions_never_share_a_pooled_sandbox(platforms: dict[str, Server]) -> None:
    server = platforms["pooled"]
    deploy(server, "first")
    marked = invoke(server, "first", {"case": "mark"})["payload"]
    deploy(server, "second")

    second = invoke(server, "second")["payload"]

    assert second["pid_namespace"] != marked["pid_namespace"]
    assert second["tmp"] == []
    assert second["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "second"
    assert invoke(server, "first")["payload"]["tmp"] == ["mark"]


def test_a_function_with_its_own_loader_variables_starts_cold(
    platforms: dict[str, Server],
) -> None:
    server = platforms["pooled"]
    created = deploy(server, "loader", Environment={"Variables": {"MALLOC_ARENA_MAX": "2"}})

    answer = invoke(server, "loader")["payload"]

    assert answer["sandbox_started"] > created - CLOCK_TICK_S
    assert answer["env"]["MALLOC_ARENA_MAX"] == "2"


def test_stopping_a_platform_leaves_no_blank_sandbox(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--sandbox-pool", "3")
    try:
        until(lambda: len(blanks(server)) >= 3)
    finally:
        stop_server(server)

    assert processes_of(server.data_dir) == []
    state_dir = server.data_dir / "workers" / "worker-1"
    assert list((state_dir / "slots").iterdir()) == []
    # The pool was drained: no blank's cgroup, host uid claim or socket is left.
    name = leftovers.worker_name("worker-1", state_dir)
    cgroups = CgroupTree(name)
    assert [p for parent in cgroups.parents if parent.exists() for p in parent.iterdir()
            if p.is_dir()] == []  # fmt: skip
    claims = HostIds(name).claims
    assert [c for c in claims.iterdir() if c.read_text() == name] == []
    assert not leftovers.socket_root(name).exists()


def test_a_blank_is_hardened_before_any_function_is_assigned(
    platforms: dict[str, Server],
) -> None:
    server = platforms["pooled"]
    until(lambda: len(blank_runtimes(server)) >= 2)

    found = [_status(pid) | {"cgroup": Path(f"/proc/{pid}/cgroup").read_text()}
             for pid in blank_runtimes(server)]  # fmt: skip

    uids = [status["Uid"].split() for status in found]
    # An unprivileged host uid of its own (not root, not the worker's), with no capability.
    assert all(len(set(uid)) == 1 and uid[0] not in ("0", "993") for uid in uids)
    assert len({uid[0] for uid in uids}) == len(uids)
    assert all(status["CapEff"] == "0000000000000000" for status in found)
    # The seccomp filter is loaded (mode 2), and each blank is in a cgroup of its own.
    assert all(status["Seccomp"] == "2" for status in found)
    cgroups = [re.search(r"memory:(\S+)", status["cgroup"]) for status in found]
    names = [match.group(1).rsplit("/", 1)[1] for match in cgroups if match]
    assert len(names) == len(found) and len(set(names)) == len(names)
    assert all(name.startswith("blank-") for name in names)


def blank_runtimes(server: Server) -> list[int]:
    """Host pids of the runtimes of the platform's blanks (the interpreter bubblewrap's
    reaper started)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_argv = Path(f"/proc/{parent}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if (
            b"--blank" in argv
            and not argv[0].endswith(b"bwrap")
            and (str(server.data_dir).encode() in parent_argv)
        ):
            found.append(int(entry.name))
    return found


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@pytest.mark.parametrize("kind", ["pooled", "cold"])
def test_a_blank_sandbox_holds_its_function_to_the_limits_a_cold_one_does(
    platforms: dict[str, Server], kind: str
) -> None:
    server = platforms[kind]
    files = {"index.py": LIMITS_PROBE}
    created = deploy(server, "hog", files, MemorySize=128, Timeout=60)

    first = invoke(server, "hog")
    killed = invoke(server, "hog", {"hoard_mb": 1 << 20})

    # A pooled function's sandbox started before the function existed: it was a blank.
    assert (first["payload"]["sandbox_started"] < created) == (kind == "pooled")
    assert first["error"] is None and first["payload"]["mount"] == errno.EPERM
    assert killed["error"] == "Unhandled"
    assert killed["payload"]["errorType"] == "Runtime.ExitError"
    assert killed["payload"]["errorMessage"].endswith(
        "Error: Runtime exited with error: signal: killed"
    )


@pytest.mark.parametrize("kind", ["pooled", "cold"])
def test_a_blank_sandbox_gets_its_functions_larger_memory_before_the_function_runs(
    platforms: dict[str, Server], kind: str
) -> None:
    server = platforms[kind]
    created = deploy(server, "roomy", {"index.py": LIMITS_PROBE}, MemorySize=512, Timeout=60)

    answer = invoke(server, "roomy", {"hoard_mb": 256})

    # Blanks wait under Lambda's smallest memory size (128 MB) until they are assigned.
    assert answer["error"] is None, answer
    assert (answer["payload"]["sandbox_started"] < created) == (kind == "pooled")
    assert answer["payload"]["hoarded_mb"] == 256


def test_blanks_are_made_per_network_mode_and_serve_only_their_own(
    platforms: dict[str, Server],
) -> None:
    server = platforms["pooled"]
    files = {"index.py": LIMITS_PROBE}
    none = {"Tags": {"lamina:network": "none"}}
    # The first function of a mode starts cold; its first invoke asks for blanks of its mode.
    deploy(server, "isolated-first", files, **none)
    invoke(server, "isolated-first")
    until(lambda: bool(blanks(server, "none")))
    until(lambda: bool(blanks(server, "outbound")))

    create_function(server.client(), files, FunctionName="isolated", **none)
    created = time.time()
    isolated = invoke(server, "isolated")["payload"]
    created_outbound = deploy(server, "connected", files)
    connected = invoke(server, "connected")["payload"]

    assert isolated["sandbox_started"] < created
    assert isolated["interfaces"] == ["lo"]
    assert connected["sandbox_started"] < created_outbound
    assert connected["interfaces"] == ["lo", "tap0"]


def _executable_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


# gVisor's blanks: the same comparisons for functions tagged `lamina:isolation=gvisor`.

needs_gvisor = pytest.mark.skipif(
    shutil.which("runsc") is None or os.geteuid() != 0,
    reason="gVisor blanks need runsc (apt-get install runsc) and root for their cgroups",
)
GVISOR = {"lamina:isolation": "gvisor"}
GVISOR_PROBE = (
    PROBE
    + r"""
import resource, socket

_probe = handler


def handler(event, context):
    answer = _probe(event, context)
    tmp = os.statvfs("/tmp")
    answer.update(
        nproc=resource.getrlimit(resource.RLIMIT_NPROC),
        tmp_mb=tmp.f_blocks * tmp.f_frsize >> 20,
        interfaces=sorted(name for _, name in socket.if_nameindex()),
        stdin=os.readlink("/proc/self/fd/0"),
        groups=os.getgroups(),
    )
    return answer
"""
)


def gvisor_blanks(server: Server, network: str = "outbound", tmp_mb: int = 512) -> list[int]:
    """Host pids of the platform's gVisor blanks of a network mode and /tmp size whose runtime
    waits for a function: `runsc run` of a blank's bundle, once the runtime has forked its
    relay."""
    mode = "--network=sandbox" if network == "outbound" else "--network=none"
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
            if (
                str(server.data_dir) in " ".join(argv)
                and "run" in argv
                and "/bundles/blank-" in argv[argv.index("--bundle") + 1]
                and mode in argv
                and f"size={tmp_mb}m" in _bundle_config(argv[argv.index("--bundle") + 1])
                # Under the ptrace platform its kernel's stub and one stub per address space
                # of the sandbox's processes (the runtime, its relay): the processes among
                # its descendants that have no command line.
                and len(_stubs(int(entry.name))) >= 3
            ):
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def _bundle_config(bundle: str) -> str:
    return (Path(bundle) / "config.json").read_text()


def _stubs(pid: int) -> list[int]:
    return [d for d in _descendants(pid) if not Path(f"/proc/{d}/cmdline").read_bytes()]


def _descendants(pid: int) -> list[int]:
    # Every thread's children: Go's runtime forks from whichever thread runs.
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    children = [int(c) for task in tasks for c in task.read_text().split()]
    return children + [d for child in children for d in _descendants(child)]


def deploy_gvisor(
    server: Server, name: str, files: dict, network: str = "outbound", **extra: object
) -> float:
    """Create a gVisor function once the platform's pool holds a gVisor blank of its key, if
    it keeps any (the first function of a backend, mode and /tmp size starts cold and asks
    for them); when it was created."""
    tags = {**GVISOR, "lamina:network": network}
    tmp_mb = int(extra.get("EphemeralStorage", {"Size": 512})["Size"])  # type: ignore[index]
    if "pooled" in server.data_dir.parts[-2]:
        if not gvisor_blanks(server, network, tmp_mb):
            first = f"{name}-first"
            create_function(server.client(), files, FunctionName=first, Tags=tags, **extra)
            invoke(server, first)
        until(lambda: bool(gvisor_blanks(server, network, tmp_mb)))
    create_function(server.client(), files, FunctionName=name, Tags=tags, **extra)
    return time.time()


@needs_gvisor
@pytest.mark.parametrize("memory_mb", [128, 1024])
def test_a_gvisor_function_from_a_blank_sees_exactly_what_a_cold_one_sees(
    platforms: dict[str, Server], memory_mb: int
) -> None:
    answers = {}
    for kind, server in platforms.items():
        created = deploy_gvisor(
            server,
            f"gprobe-{memory_mb}",
            {**FILES, "index.py": GVISOR_PROBE},
            MemorySize=memory_mb,
            EphemeralStorage={"Size": 1024},
            Environment={"Variables": {"TABLE": "orders"}},
        )
        answers[kind] = invoke(server, f"gprobe-{memory_mb}")["payload"]
        answers[kind]["created"] = created
    pooled, cold = answers["pooled"], answers["cold"]

    # The pooled sandbox started before its function existed; the cold one after.
    assert pooled.pop("sandbox_started") < pooled.pop("created")
    assert cold.pop("sandbox_started") > cold.pop("created") - CLOCK_TICK_S
    for volatile in ("imported", "pid_namespace"):
        pooled.pop(volatile), cold.pop(volatile)
    assert pooled == cold
    assert pooled["env"]["TABLE"] == "orders"
    assert sorted(pooled["task"]) == ["index.py", "lib", "run.sh"]
    assert pooled["task_writable"] is False
    assert pooled["ids"] == [993, 990] and pooled["groups"] == []
    assert pooled["nproc"] == [gvisor.process_limit(memory_mb)] * 2
    assert pooled["tmp_mb"] == 1024
    assert pooled["stdin"] == "/dev/null"


@needs_gvisor
@pytest.mark.parametrize("kind", ["pooled", "cold"])
def test_a_gvisor_blank_holds_its_function_to_the_memory_a_cold_one_does(
    platforms: dict[str, Server], kind: str
) -> None:
    server = platforms[kind]
    files = {"index.py": LIMITS_PROBE}
    created = deploy_gvisor(server, "ghog", files, MemorySize=128, Timeout=60)
    first = invoke(server, "ghog")
    created_roomy = deploy_gvisor(server, "groomy", files, MemorySize=512, Timeout=60)
    roomy = invoke(server, "groomy", {"hoard_mb": 256})

    killed = invoke(server, "ghog", {"hoard_mb": 1 << 20})

    assert (first["payload"]["sandbox_started"] < created) == (kind == "pooled")
    assert first["error"] is None and first["payload"]["mount"] == errno.EPERM
    assert killed["payload"]["errorType"] == "Runtime.ExitError"
    assert killed["payload"]["errorMessage"].endswith(
        "Error: Runtime exited with error: signal: killed"
    )
    # A blank waits under 128 MB; its function's 512 MB are in place before it runs.
    assert roomy["error"] is None, roomy
    assert (roomy["payload"]["sandbox_started"] < created_roomy) == (kind == "pooled")
    assert roomy["payload"]["hoarded_mb"] == 256


@needs_gvisor
@pytest.mark.parametrize("network", ["none", "outbound"])
def test_a_gvisor_blank_has_the_network_of_its_mode_as_a_cold_one_does(
    platforms: dict[str, Server], network: str
) -> None:
    name = f"gnet-{network}"
    answers = {}
    for kind, server in platforms.items():
        created = deploy_gvisor(server, name, {"index.py": LIMITS_PROBE}, network)
        answers[kind] = invoke(server, name)["payload"]
        answers[kind]["from_blank"] = answers[kind].pop("sandbox_started") < created

    assert answers["pooled"].pop("from_blank") is True
    assert answers["cold"].pop("from_blank") is False
    assert answers["pooled"] == answers["cold"]
    assert (answers["pooled"]["interfaces"] == ["lo"]) == (network == "none")


@needs_gvisor
def test_a_gvisor_blank_never_serves_a_second_function(platforms: dict[str, Server]) -> None:
    server = platforms["pooled"]
    files = {"index.py": GVISOR_PROBE}
    deploy_gvisor(server, "gfirst", files)
    marked = invoke(server, "gfirst", {"case": "mark"})["payload"]
    created = deploy_gvisor(server, "gsecond", files)

    second = invoke(server, "gsecond")["payload"]

    assert second["sandbox_started"] < created  # a blank too, but another one
    assert second["sandbox_started"] != marked["sandbox_started"]
    assert second["tmp"] == []
    assert second["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "gsecond"
    assert invoke(server, "gfirst")["payload"]["tmp"] == ["mark"]
