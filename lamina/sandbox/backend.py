"""Isolation backends: the ways a worker can start a sandbox, and how one is chosen.

Every backend takes the same `LaunchSpec` (code, runtime, socket directory, interpreter, /tmp
size, memory) and gives the command that starts the sandbox's runtime; the worker's handle
(`instance.Sandbox`) treats them all alike. Three exist:

- `namespace`: bubblewrap with every namespace new (the default on Linux).
- `gvisor`: the same layout inside gVisor's user-space kernel (`runsc`), for the strictest
  tenants.
- `process`: plain processes, no isolation at all, for development where namespaces are
  unavailable. A worker offers it only when its operator names it with `--isolation process`.

A worker's `--isolation` sets its default; a function chooses another with the tag
`lamina:isolation`, whose value travels to the worker in the function's configuration.
"""

from __future__ import annotations

import abc
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lamina.sandbox import bwrap
from lamina.sandbox.bwrap import BackendUnavailable, LaunchSpec
from lamina.sandbox.cgroups import PIDS_MAX, Limits

log = logging.getLogger(__name__)

# The function tag that chooses a function's isolation backend.
ISOLATION_TAG = "lamina:isolation"
NAMESPACE = "namespace"
GVISOR = "gvisor"
PROCESS = "process"
NAMES = (NAMESPACE, GVISOR, PROCESS)


class UnknownBackend(ValueError):
    """An isolation backend name that is none of `NAMES`."""


@dataclass(frozen=True)
class LaunchFds:
    """Descriptors a sandbox's launcher may inherit. `info` and `telemetry` are write ends:
    bubblewrap's info pipe and the pipe `_LAMBDA_TELEMETRY_LOG_FD` names. `seccomp` holds
    the compiled filter and `userns_block` the read end bubblewrap waits on for its id maps;
    each is None when the spec asks for neither. `assignment` is the runtime's end of a blank
    sandbox's assignment channel (`launch.py`), for the backends that start blanks."""

    info: int
    telemetry: int
    seccomp: int | None = None
    userns_block: int | None = None
    assignment: int | None = None


@dataclass
class LaunchCommand:
    """How to start one sandbox: the command, the descriptors it inherits, and the environment
    of the process started on the host."""

    argv: list[str]
    pass_fds: tuple[int, ...]
    env: dict[str, str]
    cwd: str | None = None
    # Where telemetry frames arrive when the backend cannot hand the sandbox an inherited
    # pipe; None when the sandbox writes to the descriptor it was given.
    telemetry_fd: int | None = None
    # The write end of a pipe the launcher waits on, in a new network namespace, until the
    # worker has linked that namespace to the outbound network (one byte); None when the
    # launch waits for nothing.
    gate: int | None = None
    # What the launcher gets as its standard input (a blank's assignment channel, when the
    # backend cannot hand the sandbox any other descriptor); None: /dev/null.
    stdin: int | None = None
    # The descriptor the runtime finds the telemetry pipe on, when it is not `fds.telemetry`.
    runtime_telemetry_fd: int | None = None
    # The Runtime API's TCP listener, when the backend opened it before the launch: the
    # worker serves it as it serves the listener it opens in a bubblewrap sandbox.
    api_listener: socket.socket | None = None


class IsolationBackend(abc.ABC):
    """One way to start sandboxes. `state_dir` is the worker's own directory for it."""

    name: str
    # Whether the backend starts blank sandboxes for the worker's pool (`launch.py`).
    starts_blanks = False
    # The host processes and threads a sandbox's cgroup may hold.
    host_pids_max = PIDS_MAX

    def limits(self, memory_mb: int) -> Limits:
        """The cgroup limits of a sandbox of `memory_mb` under this backend."""
        return Limits(memory_mb, pids_max=self.host_pids_max)

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    @abc.abstractmethod
    def unavailable(self) -> str | None:
        """Why this host cannot run the backend, or None when it can."""

    @abc.abstractmethod
    def launch(
        self,
        sandbox_id: str,
        spec: LaunchSpec,
        env: dict[str, str],
        fds: LaunchFds,
    ) -> LaunchCommand:
        """The launch of one sandbox whose runtime gets `env`, given the descriptors it may
        inherit (`_LAMBDA_TELEMETRY_LOG_FD` in `env` names `fds.telemetry`)."""

    @abc.abstractmethod
    async def release(self, sandbox_id: str) -> None:
        """Free what the backend holds for a sandbox whose process has exited."""

    @abc.abstractmethod
    def remove_leftovers(self) -> None:
        """Remove what a previous run of this worker left behind (after a kill -9)."""

    def peak_memory_mb(self, sandbox_id: str) -> int | None:
        """The sandbox's peak memory where the backend measures it, else None."""
        return None

    def stop(self, pid: int) -> None:
        """Kill a sandbox started by this backend, given its launcher's pid."""
        os.kill(pid, signal.SIGKILL)

    def assignment_limits(self, spec: LaunchSpec) -> dict[str, int]:
        """Resource limits (by `resource` name) that a blank's runtime sets on itself when it
        is assigned, where the backend fixes at start what depends on the function."""
        return {}

    def blank_assigned(self, blank_id: str, sandbox_id: str) -> None:
        """A blank started as `blank_id` is now the sandbox `sandbox_id`."""
        return None

    def exited(self, pid: int) -> None:
        """The sandbox's launcher `pid` has ended by itself; kill what it left, if anything
        can outlive it (a pid namespace or a container takes everything with it)."""
        return None


class NamespaceBackend(IsolationBackend):
    """bubblewrap: user, pid, mount, ipc, uts, network and cgroup namespaces (`bwrap.py`)."""

    name = NAMESPACE
    starts_blanks = True

    def unavailable(self) -> str | None:
        try:
            bwrap.executable()
            bwrap.require_root()
        except BackendUnavailable as error:
            return str(error)
        return None

    def launch(
        self,
        sandbox_id: str,
        spec: LaunchSpec,
        env: dict[str, str],
        fds: LaunchFds,
    ) -> LaunchCommand:
        blank = fds.assignment is not None
        argv = bwrap.command(spec, fds.info, fds.seccomp, fds.userns_block, blank)
        optional = (fds.seccomp, fds.userns_block, fds.assignment)
        extra = tuple(fd for fd in optional if fd is not None)
        inherited = (fds.info, fds.telemetry, *extra)
        return LaunchCommand(argv, inherited, env)

    async def release(self, sandbox_id: str) -> None:
        # The worker empties the sandbox's cgroup and frees its host uid (`WorkerAgent`).
        return None

    def remove_leftovers(self) -> None:
        # The worker's own sweep (`leftovers.py`) covers cgroups, uid claims and sockets.
        return None


def backend_classes() -> dict[str, Callable[[Path], IsolationBackend]]:
    """Every backend by name (imported here so that each module may import this one)."""
    from lamina.sandbox.gvisor import GVisorBackend
    from lamina.sandbox.process import ProcessBackend

    return {NAMESPACE: NamespaceBackend, GVISOR: GVisorBackend, PROCESS: ProcessBackend}


def check_name(name: str) -> str:
    if name not in NAMES:
        raise UnknownBackend(
            f"Unknown isolation backend {name!r}: it must be one of {', '.join(NAMES)}."
        )
    return name


@dataclass
class Backends:
    """The backends a worker offers: its default and every other one this host can run."""

    default: str
    offered: dict[str, IsolationBackend]

    def get(self, name: str) -> IsolationBackend | None:
        """The backend named, or the default for an empty name; None when not offered."""
        return self.offered.get(name or self.default)


def open_backends(state_dir: Path, chosen: str | None) -> Backends:
    """The worker's backends. `chosen` is its `--isolation`; without it, `namespace`.

    The default must work, or the worker refuses to start with the reason. `process` is
    offered only when it is the chosen default: no function may opt out of isolation on a
    worker whose operator did not ask for it.
    """
    default = check_name(chosen or NAMESPACE)
    classes = backend_classes()
    offered: dict[str, IsolationBackend] = {}
    for name in NAMES:
        if name == PROCESS and default != PROCESS:
            continue
        backend = classes[name](state_dir / name)
        reason = backend.unavailable()
        if reason is None:
            offered[name] = backend
        elif name == default:
            hint = "" if chosen else " (choose another with --isolation)"
            raise BackendUnavailable(f"isolation backend {name} is unavailable{hint}: {reason}")
        else:
            log.info("isolation backend %s not offered: %s", name, reason)
    if default == PROCESS:
        log.warning(
            "ISOLATION IS OFF: sandboxes run as plain processes of this worker's user, with "
            "no namespaces, no limits and full access to the host; use this for development "
            "only"
        )
    return Backends(default, offered)
