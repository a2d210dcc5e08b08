"""Hostile functions: each tries to cross its sandbox's boundary and must fail the right way.

Every probe is a real function doing the hostile thing; the test asserts how it failed. The
module runs once per isolation backend, chosen per function with the `lamina:isolation` tag.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lamina.sandbox import gvisor, leftovers
from tests.conftest import Server, create_function

ISOLATION_BACKENDS = ("namespace", "gvisor")

pytestmark = pytest.mark.parametrize("backend", ISOLATION_BACKENDS)

PIDS_LIMIT = 1024
# Known shortcomings of the gvisor backend (see docs/isolation.md).
GVISOR_SHARED_UID = "every gVisor sandbox's kernel runs as the host's nobody (65534)"

# What the probes share: the errno a call through the C library or Python got (0 if none).
PRELUDE = """
import ctypes, ctypes.util, os, socket
libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

def errno_of(result):
    return ctypes.get_errno() if result == -1 else 0

def attempt(action, *args):
    try:
        action(*args)
        return 0
    except OSError as error:
        return error.errno
"""


def make(lam: object, backend: str, code: str, **extra: object) -> str:
    return create_function(lam, PRELUDE + code, Tags={"lamina:isolation": backend}, **extra)


def call(lam: object, name: str, event: object = None) -> tuple[dict, object]:
    response = lam.invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event or {}).encode()
    )
    return response, json.loads(response["Payload"].read())


def answer(lam: object, name: str, event: object = None) -> object:
    response, body = call(lam, name, event)
    assert "FunctionError" not in response, body
    return body


def test_a_function_sees_no_process_beyond_its_own_sandbox(lam: object, backend: str) -> None:
    name = make(
        lam,
        backend,
        """
import os
def handler(event, context):
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen[pid] = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            pass
    return seen
""",
    )

    seen = answer(lam, name)

    # bubblewrap's init (pid 1) and the runtime, whose Runtime API the worker serves; nothing
    # of the host. gVisor has no init of bubblewrap's: the runtime is pid 1 of its kernel, and
    # it forks a relay for the Runtime API, since gVisor's network stack is its own.
    init = "1" if backend == "namespace" else None
    if init is not None:
        assert seen[init].startswith("/usr/bin/bwrap\0")
    others = [cmdline for pid, cmdline in seen.items() if pid != init]
    assert all("\0/var/runtime/bootstrap.py" in cmdline for cmdline in others), others
    assert len(others) == (1 if backend == "namespace" else 2), seen


def test_host_secrets_other_code_and_laminas_data_are_out_of_reach(
    lam: object, server: Server, backend: str
) -> None:
    other = make(lam, backend, "def handler(event, context):\n    return 'secret code'\n")
    answer(lam, other)
    code_dirs = sorted(str(p) for p in server.data_dir.glob("workers/*/code/*"))
    assert code_dirs
    name = make(
        lam,
        backend,
        """
def read(path):
    return os.listdir(path) if os.path.isdir(path) else open(path).read()

def handler(event, context):
    return {path: attempt(read, path) for path in event["paths"]}
""",
    )
    paths = ["/etc/shadow", "/root", str(server.data_dir), *code_dirs]

    result = answer(lam, name, {"paths": paths})

    assert result == {path: errno.ENOENT for path in paths}


def test_the_functions_code_cannot_be_written(lam: object, backend: str) -> None:
    name = make(
        lam,
        backend,
        """
def handler(event, context):
    paths = ("/var/task/index.py", "/var/task/new.py")
    return {path: attempt(lambda: open(path, "a").write("# changed")) for path in paths}
""",
    )

    result = answer(lam, name)

    # The existing file is not the sandbox user's; a new one meets the read-only mount
    # (gVisor checks the directory's owner, root, first).
    new_file = (errno.EROFS,) if backend == "namespace" else (errno.EACCES, errno.EROFS)
    assert result["/var/task/index.py"] in (errno.EACCES, errno.EROFS)
    assert result["/var/task/new.py"] in new_file


def test_no_host_loopback_port_answers_a_function(
    lam: object, server: Server, backend: str
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    host_ports = [int(server.url.rsplit(":", 1)[1]), listener.getsockname()[1]]
    name = make(
        lam,
        backend,
        """
def handler(event, context):
    # The sandbox's own loopback, and the host as slirp4netns's gateway shows it.
    result = {}
    for host in ("127.0.0.1", "10.0.2.2"):
        for port in event["ports"]:
            connect = lambda: socket.create_connection((host, port), timeout=2).close()
            result[f"{host}:{port}"] = attempt(connect)
    return result
""",
        Timeout=15,
    )

    with listener:
        result = answer(lam, name, {"ports": host_ports})

    # slirp4netns refuses the host's loopback; the kernel reports it unreachable, while
    # gVisor's netstack gets no answer at all and its connect times out (errno None).
    refused = errno.ENETUNREACH if backend == "namespace" else None
    assert result == {
        **{f"127.0.0.1:{port}": errno.ECONNREFUSED for port in host_ports},
        **{f"10.0.2.2:{port}": refused for port in host_ports},
    }


def test_a_function_opens_at_most_1024_files(lam: object, backend: str) -> None:
    name = make(
        lam,
        backend,
        """
import resource
def handler(event, context):
    held = []
    failure = attempt(lambda: [held.append(open("/var/task/index.py")) for _ in range(2048)])
    return {"limit": resource.getrlimit(resource.RLIMIT_NOFILE), "failure": failure,
            "opened": len(held)}
""",
        # Each open is a round trip to gVisor's file proxy on a CPU share of 128 MB.
        Timeout=30,
    )

    result = answer(lam, name)

    assert result["limit"] == [1024, 1024]
    assert result["failure"] == errno.EMFILE
    assert result["opened"] < 1024


def test_a_function_can_neither_trace_nor_signal_a_process_outside(
    lam: object, backend: str
) -> None:
    name = make(
        lam,
        backend,
        """
import signal
PTRACE_TRACEME, PTRACE_ATTACH = 0, 16
def handler(event, context):
    killed = attempt(os.kill, event["pid"], signal.SIGKILL)
    traced = errno_of(libc.ptrace(PTRACE_ATTACH, os.getppid(), 0, 0))
    traced_by_parent = errno_of(libc.ptrace(PTRACE_TRACEME, 0, 0, 0))
    return {"kill": killed, "ptrace": traced, "traceme": traced_by_parent}
""",
    )

    result = answer(lam, name, {"pid": os.getpid()})

    assert result == {"kill": errno.ESRCH, "ptrace": errno.EPERM, "traceme": errno.EPERM}


def test_a_function_cannot_mount_anything(lam: object, backend: str) -> None:
    name = make(
        lam,
        backend,
        """
def handler(event, context):
    os.makedirs("/tmp/m", exist_ok=True)
    return {
        "tmpfs": errno_of(libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None)),
        "bind": errno_of(libc.mount(b"/", b"/tmp/m", None, 4096, None)),
        "umount": errno_of(libc.umount2(b"/proc", 2)),
    }
""",
    )

    assert answer(lam, name) == {"tmpfs": errno.EPERM, "bind": errno.EPERM, "umount": errno.EPERM}


def test_a_function_cannot_load_a_kernel_module(lam: object, backend: str) -> None:
    name = make(
        lam,
        backend,
        """
SYS_init_module, SYS_finit_module = 175, 313
def handler(event, context):
    image = ctypes.create_string_buffer(b"\\x7fELF" + bytes(60))
    module = os.open("/var/task/index.py", os.O_RDONLY)
    return {
        "init_module": errno_of(libc.syscall(SYS_init_module, image, 64, b"")),
        "finit_module": errno_of(libc.syscall(SYS_finit_module, module, b"", 0)),
    }
""",
    )

    assert answer(lam, name) == {"init_module": errno.EPERM, "finit_module": errno.EPERM}


def test_a_function_can_open_no_raw_socket_nor_a_new_user_namespace(
    lam: object, backend: str
) -> None:
    name = make(
        lam,
        backend,
        """
CLONE_NEWUSER = 0x10000000
def handler(event, context):
    opened = lambda family: socket.socket(family, socket.SOCK_RAW).close()
    return {
        "userns": errno_of(libc.unshare(CLONE_NEWUSER)),
        "raw": attempt(opened, socket.AF_INET),
        "packet": attempt(opened, socket.AF_PACKET),
    }
""",
    )

    assert answer(lam, name) == {"userns": errno.EPERM, "raw": errno.EPERM, "packet": errno.EPERM}


FORK_BOMB = """
import os, signal, time
def handler(event, context):
    children, failure = [], None
    while len(children) < 4096:
        try:
            pid = os.fork()
        except OSError as error:
            failure = error.errno
            break
        if pid == 0:
            signal.pause()
            os._exit(0)
        children.append(pid)
    time.sleep(event["hold"])
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return {"forked": len(children), "failure": failure}
"""


def test_a_fork_bomb_stops_at_the_pids_limit_while_other_functions_answer(
    lam: object, server: Server, backend: str, request: pytest.FixtureRequest
) -> None:
    bomb = make(lam, backend, FORK_BOMB, MemorySize=1024, Timeout=120)
    bystander = make(lam, backend, "def handler(event, context):\n    return 'still here'\n")

    # gVisor holds a function to fewer processes than its memory could not hold.
    limit = gvisor.process_limit(1024) if backend == "gvisor" else PIDS_LIMIT
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(answer, lam, bomb, {"hold": 5})
        if backend == "gvisor":
            _wait_for_a_full_gvisor_sandbox(server, limit)
        else:
            _wait_for_a_full_sandbox(server)
        assert answer(lam, bystander) == "still here"
        outcome = result.result(timeout=120)

    assert outcome["failure"] == errno.EAGAIN
    assert outcome["forked"] < limit


def _wait_for_a_full_sandbox(server: Server) -> None:
    """Until one of the server's sandboxes holds nearly its limit of processes."""
    workers = [
        leftovers.worker_name(state.name, state) for state in server.data_dir.glob("workers/*")
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for worker in workers:
            for counter in Path("/sys/fs/cgroup").glob(f"pids/**/{worker}/*/pids.current"):
                with contextlib.suppress(OSError, ValueError):
                    if int(counter.read_text()) >= PIDS_LIMIT - 8:
                        return
        time.sleep(0.05)
    raise AssertionError("no sandbox reached its pids limit")


def _wait_for_a_full_gvisor_sandbox(server: Server, limit: int) -> None:
    """Until one of the server's gVisor sandboxes holds nearly its limit of processes. Its
    tasks live in gVisor's kernel, so runsc lists them, not the host's pids cgroup; runsc
    reaches a sandbox through a socket in the sandbox's network namespace, so it asks from
    there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        # runsc makes its state directory as it starts a worker's first gVisor sandbox.
        for root in server.data_dir.glob("workers/*/isolation/gvisor/state"):
            for kernel in _gvisor_kernels(root):
                for sandbox in _runsc(kernel, root, "list", "--quiet").split():
                    listed = _runsc(kernel, root, "ps", "--format=json", sandbox) or "[]"
                    if len(json.loads(listed)) >= limit - 8:
                        return
        time.sleep(0.2)
    raise AssertionError("no gVisor sandbox reached its process limit")


def _gvisor_kernels(root: Path) -> list[int]:
    """The host pids of the gVisor kernels (runsc-sandbox) whose state is under `root`."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError):
            words = (entry / "cmdline").read_bytes().split(b"\0")
            if words[0] == b"runsc-sandbox" and f"--root={root}".encode() in words:
                found.append(int(entry.name))
    return found


def _runsc(kernel: int, root: Path, *command: str) -> str:
    found = subprocess.run(
        ["nsenter", "-t", str(kernel), "-n", "runsc", "--root", str(root), *command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return found.stdout if found.returncode == 0 else ""


def test_filling_tmp_past_ephemeral_storage_fails_with_enospc(lam: object, backend: str) -> None:
    # /tmp is memory-backed, so the function gets the memory to fill it.
    name = make(
        lam,
        backend,
        """
def handler(event, context):
    written = 0
    block = b"x" * (1 << 20)
    try:
        with open("/tmp/fill", "wb") as sink:
            while True:
                sink.write(block)
                sink.flush()
                written += len(block)
    except OSError as error:
        return {"errno": error.errno, "written_mb": written >> 20}
""",
        MemorySize=1024,
        EphemeralStorage={"Size": 512},
        Timeout=60,
    )

    result = answer(lam, name)

    assert result["errno"] == errno.ENOSPC
    assert 500 <= result["written_mb"] <= 512


def test_allocating_past_memory_size_kills_the_runtime_as_lambda_reports_it(
    lam: object, backend: str
) -> None:
    name = make(
        lam,
        backend,
        """
def handler(event, context):
    hoard = []
    while True:
        hoard.append(bytearray(16 << 20))
""",
        MemorySize=128,
        Timeout=60,
    )

    response, body = call(lam, name)

    assert response["FunctionError"] == "Unhandled"
    request_id = response["ResponseMetadata"]["RequestId"]
    reason = "Runtime exited with error: signal: killed"
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: {reason}",
    }


def test_a_busy_loop_is_stopped_at_the_timeout(lam: object, backend: str) -> None:
    name = make(
        lam, backend, "def handler(event, context):\n    while True:\n        pass\n", Timeout=2
    )

    response, body = call(lam, name)

    assert response["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout"
    assert body["errorMessage"].endswith("Task timed out after 2.00 seconds")


LINGERER = """
import os, subprocess, sys
def handler(event, context):
    child = subprocess.Popen(
        [sys.executable, "-c", "import time\\nwhile True: time.sleep(1)", event["marker"]],
        start_new_session=True,
    )
    return child.pid
"""

# Lists the processes whose command line holds the marker.
LOOKOUT = """
import os
def handler(event, context):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if event["marker"] in open(f"/proc/{pid}/cmdline").read():
                found.append(pid)
        except OSError:
            pass
    return found
"""


def test_a_child_left_running_never_outlives_its_sandbox_nor_meets_another_function(
    lam: object, server: Server, backend: str
) -> None:
    marker = f"lingerer-{os.getpid()}-{time.monotonic_ns()}"
    before = _gvisor_pids(server.data_dir)
    # A variable the C library reads as a process starts keeps the function off the pool's
    # blanks (docs/sandbox-pool.md): its sandbox's host processes are then all new ones, and
    # under gVisor only those show which runsc processes are its (a blank's are older).
    cold = {"Environment": {"Variables": {"MALLOC_ARENA_MAX": "2"}}}
    name = make(lam, backend, LINGERER, **(cold if backend == "gvisor" else {}))
    answer(lam, name, {"marker": marker})
    if backend == "namespace":
        host_pids = _pids_with(marker)
        assert len(host_pids) == 1
        cgroup = Path(f"/proc/{host_pids[0]}/cgroup").read_text()
        assert "/lamina-" in cgroup
    else:
        # Under gVisor the child is a process of gVisor's kernel, hosted by the sandbox's
        # runsc processes and their stubs; those are what must go.
        host_pids = sorted(set(_gvisor_pids(server.data_dir)) - set(before))
        assert host_pids

    other = make(lam, backend, LOOKOUT)
    assert answer(lam, other, {"marker": marker}) == []

    lam.delete_function(FunctionName=name)  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while _alive(host_pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(host_pids) == []
    assert _pids_with(marker) == []


def _gvisor_pids(data_dir: Path) -> list[int]:
    """The host processes of the server's gVisor sandboxes: runsc's and their descendants."""
    found = [pid for pid in _all_pids() if str(data_dir).encode() in _cmdline(pid)]
    found = [pid for pid in found if b"runsc" in _cmdline(pid)]
    children = {pid: _children(pid) for pid in _all_pids()}
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def _all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    return b""


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError, ValueError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_functions_processes_are_a_distinct_unprivileged_user_on_the_host(
    lam: object, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "gvisor":
        request.applymarker(pytest.mark.xfail(strict=True, reason=GVISOR_SHARED_UID))
    marker = f"owner-{os.getpid()}-{time.monotonic_ns()}"
    first, second = make(lam, backend, LINGERER), make(lam, backend, LINGERER)

    host_uids = []
    for name in (first, second):
        answer(lam, name, {"marker": f"{marker}-{name}"})
        (pid,) = _pids_with(f"{marker}-{name}")
        host_uids.append(_uids(pid))

    assert all(uids[0] not in (0, 993) and len(set(uids)) == 1 for uids in host_uids)
    assert host_uids[0] != host_uids[1]
    for name in (first, second):
        lam.delete_function(FunctionName=name)  # type: ignore[attr-defined]


def _uids(pid: int) -> list[int]:
    """The real, effective, saved and file-system uids of a host process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(uid) for uid in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")
