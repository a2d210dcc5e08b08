"""The gvisor isolation backend: each sandbox is an OCI container run by gVisor's `runsc`.

The function's system calls reach gVisor's user-space kernel (the Sentry), never the host's;
files come through gVisor's file proxy (the Gofer). The layout inside is the namespace
backend's: a read-only root with /usr (and the interpreter's prefix at /var/lang when it
lives elsewhere), code read-only at /var/task, Lamina's runtime at /var/runtime, the sandbox's
own passwd and group, a tmpfs /tmp sized by the function's ephemeral storage, uid 993. The
namespace backend's seccomp rules are loaded by gVisor's kernel (`--oci-seccomp`). runsc runs
in the worker's cgroup for the sandbox (`--ignore-cgroups`), which holds the whole sandbox to
MemorySize, its host processes and the CPU share of its memory; inside, gVisor's kernel holds
the function to at most 1,024 processes (RLIMIT_NPROC, fewer for a small MemorySize: see
`process_limit`). Under `none` it has only its own loopback; under `outbound` gVisor's
netstack takes over a network namespace that slirp4netns links as it does bubblewrap's (see
`launch`).

Shortcoming: every sandbox's gVisor kernel runs as the host's nobody; there is no host uid
per sandbox as under the namespace backend.

Two host objects cross the boundary, each by a flag that allows only opening what is
already mounted: the sandbox's Runtime API socket (`--host-uds=open`), to which the runtime's
relay connects, and a FIFO beside it (`--host-fifo=open`) that carries telemetry frames,
since `runsc run` hands a container no descriptor beyond stdio.

A blank sandbox of the worker's pool is the same container, started before its function is
known, with /var/task an empty slot that receives the code as hard links at assignment (gVisor
revalidates bind mounts other than the root against the host, `--file-access-mounts=shared`,
so it sees files added after the container started). Its assignment channel is the
container's standard input, a socket the worker holds. Its process limit is fixed when the
container starts, before MemorySize is known: a blank starts with the limit of the largest
size, and its runtime lowers its own (soft and hard) to `process_limit(MemorySize)` from the
assignment, before any of the function's code runs; a process without capabilities can never
raise it again.

Every container's state lives under this worker's own `--root`, so what a killed worker
left running is found and deleted at its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from lamina.orphans import die_with_parent_argv
from lamina.sandbox import bwrap, seccomp
from lamina.sandbox.backend import GVISOR, IsolationBackend, LaunchCommand, LaunchFds
from lamina.sandbox.bwrap import LaunchSpec
from lamina.sandbox.cgroups import PIDS_MAX, SandboxCgroup
from lamina.sandbox.launch import ASSIGNMENT_FD_VARIABLE
from lamina.sandbox.network import NetworkMode
from lamina.sandbox.output import TELEMETRY_FD_VARIABLE
from lamina.worker.interpreters import SANDBOX_LANG_DIR

log = logging.getLogger(__name__)

TELEMETRY_FIFO = "telemetry"
# The descriptor the telemetry FIFO is opened on inside, before the runtime starts.
INNER_TELEMETRY_FD = 3
OPEN_FILES_LIMIT = 1024
# Tells the runtime to relay AWS_LAMBDA_RUNTIME_API to its socket itself: the worker cannot
# listen in gVisor's network stack, as it does in a bubblewrap sandbox's namespace.
RELAY_VARIABLE = "LAMINA_RUNTIME_RELAY"
# The host processes and threads a gVisor sandbox's cgroup may hold: its kernel's threads, the
# gofer, and a stub process per address space of the function's (one per process it forks),
# so more than the processes gVisor's kernel lets the function start (RLIMIT_NPROC).
_HOST_PIDS_MAX = 4 * PIDS_MAX
_SHELL = "/usr/bin/sh"
# Directories of the shared read-only root that mounts cover, and its links into /usr.
_MOUNT_POINTS = ("usr", "proc", "dev", "tmp", "etc", "var/task", "var/runtime", "var/lang")
_LINKS = {"lib": "usr/lib", "lib64": "usr/lib64", "bin": "usr/bin", "sbin": "usr/sbin"}
_MB = 1024 * 1024
# Host memory a process of the function costs under gVisor (its task and address space in
# gVisor's kernel and a stub process: about 6.5 MB measured for an idle forked Python), and
# what the runtime holds before the function forks (about 34 MB), each with room to spare.
_MB_PER_PROCESS = 8
_RUNTIME_MB = 48


class GVisorBackend(IsolationBackend):
    name = GVISOR
    starts_blanks = True
    host_pids_max = _HOST_PIDS_MAX

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.root = state_dir / "state"
        self.bundles = state_dir / "bundles"
        self.rootfs = state_dir / "rootfs"
        self._cgroups: dict[str, SandboxCgroup] = {}
        # The container of each sandbox that was a blank, whose container is the blank's.
        self._containers: dict[str, str] = {}

    def unavailable(self) -> str | None:
        if shutil.which("runsc") is None:
            return "gVisor is not installed: run `apt-get install runsc` as root"
        if os.geteuid() != 0:
            # Rootless runsc cannot give a container a cgroup, so no memory or pids limit.
            return "gVisor sandboxes need the worker to run as root (for their cgroups)"
        if not Path(_SHELL).exists():
            return f"{_SHELL} is missing (it opens the telemetry FIFO inside the sandbox)"
        return None

    # Launch

    def launch(
        self,
        sandbox_id: str,
        spec: LaunchSpec,
        env: dict[str, str],
        fds: LaunchFds,
    ) -> LaunchCommand:
        self._make_rootfs()
        bundle = self.bundles / sandbox_id
        bundle.mkdir(parents=True, exist_ok=True)
        inner_env = {**env, TELEMETRY_FD_VARIABLE: str(INNER_TELEMETRY_FD), RELAY_VARIABLE: "1"}
        blank = fds.assignment is not None
        if blank:
            inner_env[ASSIGNMENT_FD_VARIABLE] = "0"
        config = oci_config(spec, inner_env, self.rootfs, blank)
        (bundle / "config.json").write_text(json.dumps(config))
        telemetry = self._telemetry_fifo(spec.socket_dir)
        # The runtime (uid 993 inside) must be able to connect to the worker's socket.
        os.chmod(spec.socket_dir / bwrap.SOCKET_NAME, 0o666)

        outbound = spec.network is NetworkMode.OUTBOUND
        # runsc and everything it starts run in the worker's cgroup for the sandbox, which
        # holds them to the namespace backend's limits and is swept after a crash.
        join = spec.cgroup.exec_prefix() if spec.cgroup is not None else []
        # `runsc run` takes its sandbox with it; a killed worker must take `runsc run`.
        join = [*die_with_parent_argv(signal.SIGKILL), *join]
        if spec.cgroup is not None:
            self._cgroups[sandbox_id] = spec.cgroup
        argv = [
            _runsc(),
            "--root", str(self.root),
            "--ignore-cgroups",
            f"--network={'sandbox' if outbound else 'none'}",
            "--host-uds=open",
            "--host-fifo=open",
            # Loads `linux.seccomp`: the namespace backend's filter, applied by gVisor's kernel.
            "--oci-seccomp",
            "run", "--bundle", str(bundle), sandbox_id,
        ]  # fmt: skip
        host_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        command = LaunchCommand(
            [*join, *argv],
            (),
            host_env,
            telemetry_fd=telemetry,
            # `runsc run` hands the container its stdio alone.
            stdin=fds.assignment,
            runtime_telemetry_fd=INNER_TELEMETRY_FD,
        )
        if not outbound:
            return command

        # gVisor's netstack takes over the interfaces of the network namespace runsc starts
        # in: a new one, which slirp4netns links (without the host's loopback) while the
        # shell waits on the gate; runsc starts once the link is up.
        gate_r, gate_w = os.pipe()
        # A path, as the shell names no descriptor above 9 in a redirection. runsc releases
        # up to 2023 take a namespace showing /proc/sys/net/core/rmem_default for the host's,
        # which every namespace of a recent kernel shows, so an empty directory hides it from
        # runsc (in a mount namespace of its own; the sandbox's /proc is gVisor's).
        wait = (
            f"mount --bind {self.rootfs / 'var/task'} /proc/sys/net/core && "
            f'read _ </dev/fd/{gate_r} && exec "$@"'
        )
        command.argv = [
            *join, _unshare(), "--net", "--mount", "--", _SHELL, "-c", wait, "sh", *argv
        ]  # fmt: skip
        command.pass_fds = (gate_r,)
        command.gate = gate_w
        return command

    def _make_rootfs(self) -> None:
        """The root every container shares: empty mount points and /usr links, read-only."""
        if (self.rootfs / "etc").is_dir():
            return
        for name in _MOUNT_POINTS:
            (self.rootfs / name).mkdir(parents=True, exist_ok=True)
        for name, target in _LINKS.items():
            with contextlib.suppress(FileExistsError):
                (self.rootfs / name).symlink_to(target)

    def _telemetry_fifo(self, socket_dir: Path) -> int:
        """A FIFO in the socket directory, held open for reading and writing, so that it
        reads as empty (never as ended) until the sandbox opens its end."""
        path = socket_dir / TELEMETRY_FIFO
        os.mkfifo(path)
        # Writable by the sandbox's uid; chmod, as mkfifo's mode passes through the umask.
        os.chmod(path, 0o622)
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)

    # Teardown and leftovers

    def assignment_limits(self, spec: LaunchSpec) -> dict[str, int]:
        # A blank started with the process limit of the largest size (see `oci_config`).
        return {"RLIMIT_NPROC": process_limit(spec.memory_mb)}

    def blank_assigned(self, blank_id: str, sandbox_id: str) -> None:
        self._containers[sandbox_id] = blank_id
        cgroup = self._cgroups.pop(blank_id, None)
        if cgroup is not None:
            self._cgroups[sandbox_id] = cgroup

    async def release(self, sandbox_id: str) -> None:
        self._cgroups.pop(sandbox_id, None)
        container = self._containers.pop(sandbox_id, sandbox_id)
        # `runsc run` deletes its container when it ends by itself; not when it was killed.
        if any(self.root.glob(f"{container}_sandbox:*.state")):
            await _run_runsc(self.root, "delete", "--force", container)
        shutil.rmtree(self.bundles / container, ignore_errors=True)

    def remove_leftovers(self) -> None:
        if self.root.is_dir():
            listed = subprocess.run(
                [_runsc(), "--root", str(self.root), "list", "--quiet"],
                capture_output=True,
                text=True,
                check=False,
            )
            for container in listed.stdout.split():
                log.warning("deleting a gVisor sandbox a previous run left: %s", container)
                subprocess.run(
                    [_runsc(), "--root", str(self.root), "delete", "--force", container],
                    capture_output=True,
                    check=False,
                )
        shutil.rmtree(self.bundles, ignore_errors=True)

    # Measurements

    def peak_memory_mb(self, sandbox_id: str) -> int | None:
        """The peak of the sandbox's cgroup: the whole sandbox, gVisor's own memory included."""
        cgroup = self._cgroups.get(sandbox_id)
        peak = cgroup.peak_memory_bytes() if cgroup is not None else None
        return None if peak is None else max(1, peak // _MB)


def process_limit(memory_mb: int) -> int:
    """How many processes gVisor's kernel lets the function have: 1,024 as under the
    namespace backend, fewer for a MemorySize that cannot hold them (128 MB: 10), since a
    higher limit would only turn a fork's EAGAIN into the whole sandbox's death at its memory
    limit."""
    return max(1, min(PIDS_MAX, (memory_mb - _RUNTIME_MB) // _MB_PER_PROCESS))


def oci_config(
    spec: LaunchSpec, env: dict[str, str], rootfs: Path, blank: bool = False
) -> dict[str, Any]:
    """The OCI runtime configuration of one sandbox; a blank one waits for its function."""
    runtime = f"{bwrap.RUNTIME_DIR}/{spec.entry}"
    bootstrap = [spec.interpreter.sandbox_executable, "-I", "-S", runtime]
    bootstrap += ["--blank"] if blank else bwrap.runtime_arguments(spec.interpreter)
    fifo = f"{bwrap.SOCKET_DIR}/{TELEMETRY_FIFO}"
    # Fixed as the container starts: a blank's runtime lowers it once assigned.
    nproc = PIDS_MAX if blank else process_limit(spec.memory_mb)
    # The shell opens the telemetry FIFO where the runtime expects an inherited pipe, and
    # gives a cold start the standard input a blank's runtime takes once assigned: gVisor's
    # /dev/null in place of the host's (a blank's is its assignment channel until then).
    # runsc adds HOME from /etc/passwd to an environment without it, which Lambda's has not.
    stdin = "" if blank else " </dev/null"
    unset_home = "" if "HOME" in env else "unset HOME && "
    opening = f'exec {INNER_TELEMETRY_FD}>{fifo}{stdin} && {unset_home}exec "$@"'
    args = [_SHELL, "-c", opening, "sh", *bootstrap]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": bwrap.SANDBOX_UID, "gid": bwrap.SANDBOX_GID},
            "args": args,
            "env": [f"{key}={value}" for key, value in env.items()],
            "cwd": bwrap.TASK_ROOT,
            "capabilities": {},
            "noNewPrivileges": True,
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": OPEN_FILES_LIMIT, "soft": OPEN_FILES_LIMIT},
                # gVisor's kernel counts a user's processes within its own sandbox: the
                # function's pids limit, which the host cgroup's pids.max cannot be, as it
                # counts gVisor's own threads and stubs, not the function's processes.
                {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
            ],
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "localhost",
        "mounts": _mounts(spec),
        "linux": {
            "namespaces": _namespaces(spec),
            "seccomp": seccomp.oci_profile(),
        },
    }


def _namespaces(spec: LaunchSpec) -> list[dict[str, str]]:
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    if spec.network is NetworkMode.OUTBOUND:
        # The namespace `runsc run` was started in (see `launch`), whose interfaces gVisor's
        # netstack takes over; runsc refuses a sandbox network without a namespace named.
        namespaces[1]["path"] = "/proc/self/ns/net"
    return namespaces


def _mounts(spec: LaunchSpec) -> list[dict[str, Any]]:
    def bind(source: str | Path, destination: str, mode: str = "ro") -> dict[str, Any]:
        return {
            "destination": destination,
            "type": "bind",
            "source": str(source),
            "options": ["rbind", mode, "nosuid", "nodev"],
        }

    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", f"size={spec.tmp_size_mb}m"],
        },
        bind("/usr", "/usr"),
        bind(spec.code_dir, bwrap.TASK_ROOT),
        bind(spec.runtime_dir, bwrap.RUNTIME_DIR),
        # Writable only so that the runtime can open the telemetry FIFO for writing; uid 993
        # cannot create or remove anything in the directory, which root owns.
        bind(spec.socket_dir, bwrap.SOCKET_DIR, "rw"),
        bind(spec.etc_dir / "passwd", "/etc/passwd"),
        bind(spec.etc_dir / "group", "/etc/group"),
    ]
    mounts += [bind(path, path) for path in bwrap.ETC_FILES if Path(path).exists()]
    if spec.network is NetworkMode.OUTBOUND:
        mounts.append(bind(spec.etc_dir / "resolv.conf", "/etc/resolv.conf"))
    if spec.interpreter.mounted_at_lang:
        mounts.append(bind(spec.interpreter.host_prefix, SANDBOX_LANG_DIR))
    return mounts


def _unshare() -> str:
    return shutil.which("unshare") or "unshare"


def _runsc() -> str:
    return shutil.which("runsc") or "runsc"


async def _run_runsc(root: Path, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        _runsc(),
        "--root",
        str(root),
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await process.wait()
