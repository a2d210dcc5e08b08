"""Resource limits of sandboxes: one cgroup per sandbox under one parent per worker.

Both cgroup versions are served. Version 2 is used when the unified hierarchy offers the
memory, pids and cpu controllers; otherwise each controller's version 1 hierarchy is. The
parent lives under the worker's own cgroup in each hierarchy and is named after the worker and
its state directory (`leftovers.worker_name`), so a worker restarted after a crash finds and
removes what its previous run left.

A sandbox's limits are Lambda's: memory = MemorySize with no swap, 1,024 processes and
threads, and a CPU quota proportional to memory (1,769 MB = one vCPU). The sandbox's first
process joins its cgroup before it executes bubblewrap (see `bwrap.command`), so nothing of
the sandbox ever runs outside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PIDS_MAX = 1024
MB_PER_VCPU = 1769
CPU_PERIOD_US = 100_000
# The kernel refuses a quota under 1 ms per period.
_MIN_QUOTA_US = 1000
_V1_CONTROLLERS = ("memory", "pids", "cpu")
_V1_MAX_SHARES = 262144
_V2_MAX_WEIGHT = 10000
# A sandbox's weight per MB of memory: one vCPU's worth (1,769 MB) weighs the default 1024.
_V1_SHARES_PER_VCPU = 1024
_V2_WEIGHT_PER_VCPU = 100
# How long a removal waits for the processes it killed to leave the cgroup.
_RELEASE_TRIES = 200
_RELEASE_PAUSE_S = 0.01
# Writes its pid into each cgroup.procs file named before "--", then becomes what follows.
_JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class CgroupsUnavailable(Exception):
    """The host offers no cgroup hierarchy this worker can create its sandboxes' cgroups in."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    # Host processes and threads; a backend whose own machinery runs in the sandbox's cgroup
    # (gVisor's kernel, its stubs) needs more than the function may start.
    pids_max: int = PIDS_MAX

    @property
    def cpu_quota_us(self) -> int:
        return max(_MIN_QUOTA_US, CPU_PERIOD_US * self.memory_mb // MB_PER_VCPU)

    def cpu_weight(self, per_vcpu: int) -> int:
        """The sandbox's share of contended CPU against its siblings."""
        return max(2, per_vcpu * self.memory_mb // MB_PER_VCPU)


@dataclass(frozen=True)
class SandboxCgroup:
    """One sandbox's cgroup: a directory in each hierarchy in use (one under version 2)."""

    name: str
    directories: tuple[Path, ...]
    version: int

    def exec_prefix(self) -> list[str]:
        """An argv prefix that moves the process into the cgroup, then executes the rest.

        The move is made after exec rather than between fork and exec: moving a process
        between version 1 cgroups may wait for the kernel, and the worker waits for the exec.
        """
        files = [str(directory / "cgroup.procs") for directory in self.directories]
        return ["/bin/sh", "-c", _JOIN_SCRIPT, "lamina-cgroup-join", *files, "--"]

    def throttle(self, limits: Limits) -> None:
        """Apply the CPU quota; the init phase runs before it, unthrottled, so a cold start
        does not pay a small memory size's CPU share."""
        quota = limits.cpu_quota_us
        if self.version == 2:
            _write(self.directories[0] / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            return
        cpu = self._v1("cpu")
        _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
        _write(cpu / "cpu.cfs_quota_us", str(quota))

    def limit(self, limits: Limits) -> None:
        """Set the memory, pids and CPU weight limits; a blank sandbox's are set again, to its
        function's, when it is assigned (before any of the function's code runs)."""
        megabytes = str(limits.memory_mb * 1024 * 1024)
        if self.version == 2:
            unified = self.directories[0]
            _write(unified / "memory.max", megabytes)
            _write(unified / "memory.swap.max", "0")
            _write(unified / "pids.max", str(limits.pids_max))
            _write(unified / "cpu.weight", str(limits.cpu_weight(_V2_WEIGHT_PER_VCPU)))
            return

        memory = self._v1("memory")
        # The kernel keeps the memory limit at most the memory and swap one at every step.
        swap = memory / "memory.memsw.limit_in_bytes"
        current = int((memory / "memory.limit_in_bytes").read_text())
        steps = [(memory / "memory.limit_in_bytes", megabytes)]
        # The combined memory and swap limit exists only when the kernel accounts swap.
        if swap.exists():
            raising = int(megabytes) > current
            steps.insert(0 if raising else 1, (swap, megabytes))
        for path, value in steps:
            _write(path, value)
        _write(memory / "memory.swappiness", "0")
        _write(self._v1("pids") / "pids.max", str(limits.pids_max))
        _write(self._v1("cpu") / "cpu.shares", str(limits.cpu_weight(_V1_SHARES_PER_VCPU)))

    def pids(self) -> list[int]:
        pids: set[int] = set()
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return sorted(pids)

    def kill_all(self) -> None:
        if self.version == 2 and (self.directories[0] / "cgroup.kill").exists():
            with contextlib.suppress(FileNotFoundError):
                _write(self.directories[0] / "cgroup.kill", "1")
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def peak_memory_bytes(self) -> int | None:
        """The most memory the cgroup has held; None where the kernel does not say."""
        if self.version == 2:
            path = self.directories[0] / "memory.peak"
        else:
            path = self._v1("memory") / "memory.max_usage_in_bytes"
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text())
        return None

    async def release(self) -> None:
        """Kill whatever is left in the cgroup, then remove it once it is empty."""
        for _ in range(_RELEASE_TRIES):
            self.kill_all()
            if self._remove():
                return
            await asyncio.sleep(_RELEASE_PAUSE_S)
        log.warning("cgroup still busy, left in place name=%s", self.name)

    def _remove(self) -> bool:
        for directory in self.directories:
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True

    def _v1(self, controller: str) -> Path:
        index = _V1_CONTROLLERS.index(controller)
        return self.directories[index]


class CgroupTree:
    """The worker's parent cgroup and the sandboxes' cgroups under it."""

    def __init__(self, parent_name: str, root: Path = CGROUP_ROOT) -> None:
        self.parent_name = parent_name
        self.version, self.parents = _locate(root, parent_name)

    def prepare(self) -> None:
        for parent in self.parents:
            parent.mkdir(exist_ok=True)
        # The sandboxes together weigh as much as the scheduler allows: as one group at the
        # default weight they would share one process's worth of CPU on a busy host.
        if self.version == 2:
            # Each level down to the sandboxes' cgroups hands the controllers on.
            for level in (self.parents[0].parent, self.parents[0]):
                try:
                    _write(level / "cgroup.subtree_control", "+memory +pids +cpu")
                except OSError as error:
                    # Version 2 lets no cgroup that holds processes hand controllers on.
                    raise CgroupsUnavailable(
                        f"cannot delegate the memory, pids and cpu controllers below {level} "
                        f"({error.strerror}): run the worker in a cgroup of its own, e.g. a "
                        "systemd service with Delegate=yes"
                    ) from error
            _write(self.parents[0] / "cpu.weight", str(_V2_MAX_WEIGHT))
        else:
            _write(self._v1_parent("cpu") / "cpu.shares", str(_V1_MAX_SHARES))

    def _v1_parent(self, controller: str) -> Path:
        return self.parents[_V1_CONTROLLERS.index(controller)]

    def remove(self) -> None:
        """Remove the worker's parent cgroup once its sandboxes' cgroups are gone."""
        for parent in self.parents:
            with contextlib.suppress(FileNotFoundError, OSError):
                parent.rmdir()

    def create(self, sandbox_id: str, limits: Limits) -> SandboxCgroup:
        directories = tuple(parent / sandbox_id for parent in self.parents)
        for directory in directories:
            directory.mkdir()
        cgroup = SandboxCgroup(sandbox_id, directories, self.version)
        cgroup.limit(limits)
        return cgroup

    def existing(self) -> list[SandboxCgroup]:
        """The sandboxes' cgroups present now, whoever created them."""
        names: set[str] = set()
        for parent in self.parents:
            if parent.is_dir():
                names.update(p.name for p in parent.iterdir() if p.is_dir())
        return [
            SandboxCgroup(name, tuple(p / name for p in self.parents), self.version)
            for name in sorted(names)
        ]


def _locate(root: Path, parent_name: str) -> tuple[int, tuple[Path, ...]]:
    own = _own_cgroups()
    unified = _unified_mount(root)
    if unified is not None:
        offered = set((unified / "cgroup.controllers").read_text().split())
        # Shortcoming: only version 1 hosts have run Lamina's tests; this branch has not.
        if {"memory", "pids", "cpu"} <= offered:
            return 2, (unified / own.get("", "/").lstrip("/") / parent_name,)

    parents = []
    for controller in _V1_CONTROLLERS:
        mount = root / controller
        if not (mount / "cgroup.procs").exists() or controller not in own:
            raise CgroupsUnavailable(
                f"no cgroup hierarchy offers the {controller} controller under {root}"
            )
        parents.append(mount / own[controller].lstrip("/") / parent_name)
    return 1, tuple(parents)


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup path per version 1 controller, and under "" its version 2 one."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            own[controller] = path
    return own


def _unified_mount(root: Path) -> Path | None:
    for candidate in (root, root / "unified"):
        if (candidate / "cgroup.controllers").exists():
            return candidate
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)
