"""A worker killed with SIGKILL cleans nothing; the platform starts it again, and that start
removes what its sandboxes left, under either isolation backend, blank sandboxes of its pool
included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lamina.sandbox import leftovers
from lamina.sandbox.cgroups import CgroupTree
from lamina.sandbox.hostids import HostIds
from tests.conftest import create_function, start_server, stop_server
from tests.e2e.restarts import dead, platform_paused, started_at, wait_for_restart

# A function that leaves a process of its own running in its sandbox.
LINGERER = """
import subprocess, sys
def handler(event, context):
    subprocess.Popen([sys.executable, "-c", "import time\\nwhile True: time.sleep(1)"])
    return "left a child"
"""


def test_a_worker_restarted_after_sigkill_leaves_no_process_mount_cgroup_or_netns(
    tmp_path: Path,
) -> None:
    if shutil.which("runsc") is None:
        pytest.skip("runsc (gVisor) is not installed: apt-get install runsc")
    data_dir = tmp_path / "data"
    server = start_server(data_dir, "--workers", "1", "--keep-alive", "600")
    name = leftovers.worker_name("worker-1", data_dir / "workers" / "worker-1")
    state_dir = data_dir / "workers" / "worker-1"
    slots = state_dir / "slots"
    try:
        lam = server.client()
        for _ in range(3):
            function = create_function(lam, LINGERER)
            lam.invoke(FunctionName=function, Payload=b"{}")
        # A gVisor sandbox too: runsc, its gofer and sandbox processes, its own netns.
        function = create_function(lam, LINGERER, Tags={"lamina:isolation": "gvisor"})
        lam.invoke(FunctionName=function, Payload=b"{}")
        # The pool's blanks are started again in the background after each first invoke;
        # the gVisor function's asks for gVisor blanks.
        _wait_until(lambda: len(_blank_cgroups(name)) >= 4)
        _wait_until(lambda: len(_gvisor_containers(state_dir)) >= 2)
        assert [c for c in _gvisor_containers(state_dir) if c.startswith("blank-")]
        sandboxed = _pids_in_cgroups(name)
        assert len(sandboxed) >= 9
        assert [pid for pid in sandboxed if b"runsc-sandbox" in _cmdline(pid)]
        namespaces = _namespaces(sandboxed)
        cgroups = _sandbox_cgroups(name)
        assert len(cgroups) >= 6
        assert list(slots.iterdir())

        worker = _worker_pid(data_dir)
        with platform_paused(server):
            os.kill(worker, signal.SIGKILL)
            _wait_until(lambda: dead(worker))
            # The dead worker removed nothing: its sandboxes' cgroups are still there.
            assert all(path.exists() for path in cgroups)
            left = _identities([*cgroups, *_entries(slots), *_entries(_socket_dir(name))])
            left |= _identities(_claims(name))
        restarted = wait_for_restart(server, "worker-1", worker, lambda: _worker_pid(data_dir))

        # The restarted worker fills its pool again: what started after it is its own.
        since = started_at(restarted)
        assert since is not None
        older = [pid for pid in _pids_in_cgroups(name) if _started_before(pid, since)]
        assert older == []
        assert [path for path in cgroups if (path, _identity(path)) in left] == []
        assert [p for p in _sandbox_cgroups(name) if not p.name.startswith("blank-")] == []
        # Namespace numbers are reused once freed, so a holder of one may be a stranger's.
        holders = [pid for pid in _all_pids() if _namespaces([pid]) & namespaces]
        holders = [pid for pid in holders if _started_before(pid, since)]
        assert [pid for pid in holders if _belongs_to(pid, name, data_dir)] == []
        assert [line for line in _mounts() if str(data_dir) in line] == []
        assert _identities(_entries(_socket_dir(name))) & left == set()
        assert _gvisor_containers(state_dir) == []
        bundles = state_dir / "isolation" / "gvisor" / "bundles"
        assert not bundles.exists() or list(bundles.iterdir()) == []
        assert _identities(_entries(slots)) & left == set()
        assert _identities(_claims(name)) & left == set()
    finally:
        assert stop_server(server) == 0


def _socket_dir(name: str) -> Path:
    return leftovers.socket_root(name)


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.is_dir() else []


def _claims(name: str) -> list[Path]:
    return [c for c in HostIds(name).claims.iterdir() if c.read_text() == name]


def _identity(path: Path) -> tuple[int, int] | None:
    """What tells a file apart from one made under the same name after it was removed."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_ctime_ns


def _identities(paths: list[Path]) -> set[tuple[Path, tuple[int, int] | None]]:
    return {(path, _identity(path)) for path in paths if _identity(path) is not None}


def _started_before(pid: int, moment: int) -> bool:
    started = started_at(pid)
    return started is not None and started < moment


def _sandbox_cgroups(name: str) -> list[Path]:
    # The worker's parents sit where this test's own cgroups are, as the worker is its child.
    parents = [parent for parent in CgroupTree(name).parents if parent.is_dir()]
    return sorted(p for parent in parents for p in parent.iterdir() if p.is_dir())


def _blank_cgroups(name: str) -> list[Path]:
    return [path for path in _sandbox_cgroups(name) if path.name.startswith("blank-")]


def _pids_in_cgroups(name: str) -> list[int]:
    found = []
    for pid in _all_pids():
        try:
            if f"/{name}/" in Path(f"/proc/{pid}/cgroup").read_text():
                found.append(pid)
        except OSError:
            continue
    return found


def _belongs_to(pid: int, name: str, data_dir: Path) -> bool:
    try:
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return f"/{name}/" in cgroups or str(data_dir).encode() in argv


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _gvisor_containers(state_dir: Path) -> list[str]:
    """The containers runsc still keeps state of under the worker's gVisor root."""
    root = state_dir / "isolation" / "gvisor" / "state"
    listed = subprocess.run(
        ["runsc", "--root", str(root), "list", "--quiet"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()


def _namespaces(pids: list[int]) -> set[str]:
    """The network and mount namespaces the processes are in."""
    found = set()
    for pid in pids:
        for kind in ("net", "mnt"):
            try:
                found.add(os.readlink(f"/proc/{pid}/ns/{kind}"))
            except OSError:
                continue
    # Those of this test's own process are the host's, not a sandbox's.
    return found - {os.readlink(f"/proc/self/ns/{kind}") for kind in ("net", "mnt")}


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _mounts() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def _worker_pid(data_dir: Path) -> int:
    for pid in _all_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and str(data_dir / "workers" / "worker-1").encode() in argv:
            return pid
    raise AssertionError(f"no worker process for {json.dumps(str(data_dir))}")


def _wait_until(condition: object) -> None:
    deadline = time.monotonic() + 30
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.05)
