"""The process isolation backend: a sandbox is a plain process of the worker's user.

Nothing isolates it: it sees the host's files, processes and network, shares the host's /tmp,
and has no memory limit. It exists for development on machines where namespaces are
unavailable, is offered only by a worker started with `--isolation process`, and says so at
the worker's start and in every sandbox's log.

The layout follows the host's paths: the code stays where the worker unpacked it (named by
LAMBDA_TASK_ROOT), and the worker serves the sandbox's Runtime API on a loopback port of its
own, opened before the runtime starts, since 127.0.0.1:9001 can serve only one sandbox per
host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path

from lamina.orphans import die_with_parent_argv
from lamina.sandbox import bwrap, network
from lamina.sandbox.backend import PROCESS, IsolationBackend, LaunchCommand, LaunchFds
from lamina.sandbox.bwrap import LaunchSpec

log = logging.getLogger(__name__)

WARNING_LINE = (
    "WARNING: this sandbox runs with isolation backend 'process': no isolation from the host "
    "or from other functions\n"
)


class ProcessBackend(IsolationBackend):
    name = PROCESS

    def unavailable(self) -> str | None:
        return None

    def launch(
        self,
        sandbox_id: str,
        spec: LaunchSpec,
        env: dict[str, str],
        fds: LaunchFds,
    ) -> LaunchCommand:
        log.warning("sandbox %s starts WITHOUT isolation (backend process)", sandbox_id)
        interpreter = spec.interpreter
        argv = [interpreter.host_executable, "-I", "-S", str(spec.runtime_dir / "bootstrap.py")]
        if interpreter.custom:
            argv += ["--exec", str(spec.code_dir / "bootstrap")]
        bin_dir = str(Path(interpreter.host_executable).parent)
        # Open before the runtime starts, so nothing can take the port meanwhile.
        listener = network.tcp_listener("127.0.0.1", 0)
        own = {
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": str(spec.runtime_dir),
            "LAMINA_RUNTIME_SOCKET": str(spec.socket_dir / bwrap.SOCKET_NAME),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{listener.getsockname()[1]}",
            "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
        }
        argv = [*die_with_parent_argv(signal.SIGKILL), *argv]
        return LaunchCommand(
            argv,
            (fds.telemetry,),
            {**env, **own},
            cwd=str(spec.code_dir),
            api_listener=listener,
        )

    async def release(self, sandbox_id: str) -> None:
        # A plain process holds nothing beyond what the worker removes itself.
        return None

    def remove_leftovers(self) -> None:
        # Runtimes die with the worker (see `Sandbox.start`); nothing else outlives it.
        return None

    def stop(self, pid: int) -> None:
        # The sandbox's process group: its runtime and what the function forked.
        os.killpg(pid, signal.SIGKILL)

    def exited(self, pid: int) -> None:
        # A runtime that exited leaves its group behind: what the function forked. The group
        # keeps its id while any of them lives, so it names only them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
