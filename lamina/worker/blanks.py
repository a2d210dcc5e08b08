"""Blank sandboxes of the namespace and gvisor backends, for the worker's pool.

A blank is started like any sandbox of its backend (see `lamina/sandbox/bwrap.py` and
`lamina/sandbox/gvisor.py`), except that /var/task is an empty directory of its own, a slot,
bound read-only. On assignment the slot receives the function's code as hard links to the
unpacked code, which costs one link per file and copies nothing; the sandbox sees the code
read-only at /var/task as a cold start would, and nothing of any other function. The slot goes
when the sandbox does.

A blank gets every layer of a cold-started sandbox of its backend from the start
(`WorkerAgent._launch_spec`): its own cgroup, the seccomp filter and the network mode of its
pool key, connected before its runtime starts, and under `namespace` its own host uid. Its
cgroup holds it to Lambda's smallest memory size until it is assigned; the function's limits
replace those before the function's environment is sent, so none of the function's code runs
under any other limit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from lamina.sandbox import bwrap
from lamina.sandbox.backend import IsolationBackend
from lamina.sandbox.cgroups import Limits
from lamina.sandbox.launch import ServeListener, spawn
from lamina.sandbox.network import NetworkMode
from lamina.sandbox.pool import Blank, PoolKey
from lamina.worker.interpreters import Interpreter

# Code of at most this many files and no directories is linked without a thread.
_INLINE_LINKS = 16
# Lambda's smallest MemorySize: assignment only ever raises a blank's memory limit.
BLANK_MEMORY_MB = 128

# How a worker makes a sandbox's spec: name (of its cgroup), interpreter, code directory,
# socket directory, /tmp size, network mode, limits and isolation backend.
SpecFor = Callable[[str, Interpreter, Path, Path, int, NetworkMode, Limits, str], bwrap.LaunchSpec]


class Blanks:
    """Starts blanks under their key's backend and fits them to the function they are given."""

    def __init__(
        self,
        slots_root: Path,
        socket_root: Path,
        interpreters: Callable[[str], Interpreter],
        spec_for: SpecFor,
        environment: dict[str, str],
        release: Callable[[bwrap.LaunchSpec, IsolationBackend, str], None],
        open_socket: Callable[[str], Awaitable[None]],
        serve_listener: ServeListener,
        backend: Callable[[str], IsolationBackend],
    ) -> None:
        self.environment = environment
        self._slots_root = slots_root
        self._socket_root = socket_root
        self._interpreter = interpreters
        self._spec_for = spec_for
        # Frees a spec's cgroup, host uid and socket, and what its backend holds for the
        # launch named, once its processes are gone (in the background).
        self._release = release
        # Opens a Runtime API socket, so that assigning a blank need not.
        self._open_socket = open_socket
        self._serve_listener = serve_listener
        # The backend of a name, known once the worker has started.
        self._backend = backend
        self._specs: dict[str, bwrap.LaunchSpec] = {}
        self._ids = itertools.count(1)
        # A worker killed with SIGKILL left its slots behind: their sandboxes died with it.
        shutil.rmtree(slots_root, ignore_errors=True)
        slots_root.mkdir(parents=True)

    async def start_blank(self, key: PoolKey) -> Blank:
        blank_id = f"blank-{next(self._ids)}"
        slot = self._slots_root / blank_id
        socket_dir = self._socket_root / blank_id
        slot.mkdir()
        socket_dir.mkdir(mode=0o755)
        interpreter = self._interpreter(key.executable)
        backend = self._backend(key.isolation)
        limits = backend.limits(BLANK_MEMORY_MB)
        try:
            spec = self._spec_for(
                blank_id,
                interpreter,
                slot,
                socket_dir,
                key.tmp_size_mb,
                key.network,
                limits,
                key.isolation,
            )
        except BaseException:
            self._remove_dirs(blank_id)
            raise
        self._specs[blank_id] = spec
        try:
            await self._open_socket(str(socket_dir / bwrap.SOCKET_NAME))
            launch = await spawn(
                backend, blank_id, spec, self.environment, self._serve_listener, blank=True
            )
        except BaseException:
            self._remove_dirs(blank_id)
            self._release(spec, backend, blank_id)
            raise
        return Blank(blank_id, key, launch)

    async def fit(
        self,
        blank: Blank,
        sandbox_id: str,
        code_dir: Path,
        interpreter: Interpreter,
        limits: Limits,
    ) -> bwrap.LaunchSpec:
        """Put the function's code in the blank's slot and its limits on the blank's cgroup;
        the spec the sandbox `sandbox_id` now runs under, which the caller then owns.

        Raises OSError when the code cannot be linked there (another file system) or the
        limits cannot be set; the blank is still the pool's to discard.
        """
        spec = self._specs[blank.blank_id]
        if _flat_and_small(code_dir):
            # Handing a few links to a thread would cost more than making them.
            _link_tree(code_dir, spec.code_dir)
        else:
            await asyncio.to_thread(_link_tree, code_dir, spec.code_dir)
        assert spec.cgroup is not None
        spec.cgroup.limit(limits)
        del self._specs[blank.blank_id]
        self._backend(blank.key.isolation).blank_assigned(blank.blank_id, sandbox_id)
        return replace(spec, interpreter=interpreter, memory_mb=limits.memory_mb)

    def discard(self, blank: Blank) -> None:
        blank.launch.kill()
        blank.launch.close_unused()
        spec = self._specs.get(blank.blank_id)
        self._remove_dirs(blank.blank_id)
        if spec is not None:
            self._release(spec, self._backend(blank.key.isolation), blank.blank_id)

    def release(self, spec: bwrap.LaunchSpec) -> None:
        """Remove the slot of a sandbox that was a blank, once it has died."""
        if spec.code_dir.parent == self._slots_root:
            shutil.rmtree(spec.code_dir, ignore_errors=True)

    def _remove_dirs(self, blank_id: str) -> None:
        self._specs.pop(blank_id, None)
        shutil.rmtree(self._slots_root / blank_id, ignore_errors=True)
        shutil.rmtree(self._socket_root / blank_id, ignore_errors=True)


def _flat_and_small(code_dir: Path) -> bool:
    with os.scandir(code_dir) as entries:
        kinds = [entry.is_dir(follow_symlinks=False) for entry in entries]
    return len(kinds) <= _INLINE_LINKS and not any(kinds)


def _link_tree(source: Path, slot: Path) -> None:
    # copystat gives the slot the code directory's own mode and times, as a cold start shows.
    shutil.copytree(source, slot, symlinks=True, copy_function=os.link, dirs_exist_ok=True)
