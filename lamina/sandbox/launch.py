"""Starting a sandbox's process under its backend: the pipes it writes its log to, its id maps
and network, and, for a blank sandbox of the pool, the channel on which its runtime later
receives its function.

Every layer of the sandbox is in place before its runtime starts, blank or not. Under
bubblewrap the process joins the sandbox's cgroup before it executes bubblewrap, the worker
writes the user namespace's id maps and connects the network while bubblewrap waits on its
block pipe, and bubblewrap loads the seccomp filter before it starts the runtime. Under gVisor
runsc starts in the cgroup, once the worker has linked its network namespace, and gVisor's
kernel loads the filter (`gvisor.py`).

Under bubblewrap the worker also opens the Runtime API's TCP listener (AWS_LAMBDA_RUNTIME_API)
inside the sandbox's network namespace while bubblewrap waits, so the runtime finds it open
from its first instruction (the process backend opens one on a loopback port of its own before
the launch); under gVisor, whose network stack is its own, the runtime relays it.

A blank sandbox is the same sandbox, started before any function is known: its runtime has
started the interpreter and imported itself (under gVisor, opened its relay), and waits on the
channel (an inherited descriptor under bubblewrap; its standard input under gVisor, which
hands a container nothing else). Assigning it sends the function's environment (and, for a
custom runtime, the program to become) down the channel once and closes it, so a sandbox is
assigned at most once: it never changes function.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lamina.sandbox import bwrap, network, pipes
from lamina.sandbox.backend import IsolationBackend, LaunchCommand, LaunchFds
from lamina.sandbox.network import NetworkMode, NetworkUnavailable
from lamina.sandbox.output import TELEMETRY_FD_VARIABLE

log = logging.getLogger(__name__)

# Names the runtime's end of the assignment channel inside a blank sandbox.
ASSIGNMENT_FD_VARIABLE = "LAMINA_ASSIGNMENT_FD"
# What a blank runtime writes on its channel once it waits for its function.
READY_MESSAGE = b"ready\n"


# Serves a sandbox's Runtime API, known by its socket's path, also on a TCP listener the
# worker opened for it (`RuntimeApiServer.listen`).
ServeListener = Callable[[str, socket.socket], Awaitable[None]]


class AssignmentFailed(Exception):
    """The blank sandbox's channel is gone: its runtime died before it was assigned."""


@dataclass
class Launch:
    """A started sandbox process and the worker's ends of its pipes."""

    process: asyncio.subprocess.Process
    log_fd: int
    telemetry_fd: int
    info_fd: int
    # The telemetry pipe's descriptor as the runtime sees it.
    telemetry_child_fd: int
    # The worker's end of a blank sandbox's assignment channel, open until the sandbox ends:
    # closing it with the runtime's "ready" unread would reset the runtime's end.
    channel: socket.socket | None = None
    assigned: bool = False
    # The names of the environment the worker started the process with.
    started_with: tuple[str, ...] = ()
    # The host pid of bubblewrap's reaper (pid 1 inside), once read from bubblewrap's info.
    reaper_pid: int | None = None
    # slirp4netns, under the `outbound` network mode.
    network: asyncio.subprocess.Process | None = None
    # The Runtime API's TCP listener inside the sandbox's network namespace (bubblewrap),
    # which the Runtime API server takes over and closes.
    api_listener: socket.socket | None = None

    async def wait_ready(self) -> bool:
        """Whether the blank runtime reached the point where it waits for its function."""
        assert self.channel is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.sock_recv(self.channel, len(READY_MESSAGE)) == READY_MESSAGE
        except OSError:
            return False

    def assign(
        self, env: dict[str, str], arguments: list[str], limits: dict[str, int] | None = None
    ) -> None:
        """Give the blank runtime its function: the environment it runs with (exactly the one
        a cold start passes), the arguments it continues with, and the resource limits it
        lowers its own to (soft and hard) before any of the function's code runs."""
        assert self.channel is not None and not self.assigned
        document = {
            "environment": {**env, TELEMETRY_FD_VARIABLE: str(self.telemetry_child_fd)},
            "arguments": arguments,
            "started_with": self.started_with,
            "limits": limits or {},
        }
        self.assigned = True
        data = json.dumps(document).encode()
        try:
            # Far below a socket's buffer (Lambda caps variables at 4 KB): this never waits.
            if self.channel.send(data) != len(data):
                raise AssignmentFailed("the assignment did not fit the channel")
            self.channel.shutdown(socket.SHUT_WR)
        except OSError as error:
            raise AssignmentFailed(str(error)) from None

    def kill(self) -> None:
        """Kill the sandbox's process tree (its pid namespace) and its network helper."""
        for process in (self.process, self.network):
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def close_unused(self) -> None:
        """Close the pipes of a launch that never became a sandbox (the pool, which watches
        the channel, closes that; the Runtime API server, which serves the listener, that)."""
        for fd in (self.log_fd, self.telemetry_fd, self.info_fd):
            try:
                os.close(fd)
            except OSError:
                log.debug("descriptor already closed fd=%d", fd)


async def spawn(
    backend: IsolationBackend,
    sandbox_id: str,
    spec: bwrap.LaunchSpec,
    env: dict[str, str],
    serve_listener: ServeListener,
    blank: bool = False,
) -> Launch:
    """Start the sandbox described by `spec` under `backend`; a blank one waits for its
    function. A TCP listener opened for its Runtime API goes to `serve_listener`."""
    if blank and not backend.starts_blanks:
        raise ValueError(f"the {backend.name} backend starts no blank sandboxes")

    log_r, log_w = os.pipe()
    telemetry_r, telemetry_w = os.pipe()
    info_r, info_w = os.pipe()
    seccomp_fd = spec.seccomp.open() if spec.seccomp is not None else None
    block_r, block_w = os.pipe() if spec.host_id is not None else (None, None)
    channel = runtime_end = None
    env = {**env, TELEMETRY_FD_VARIABLE: str(telemetry_w)}
    if blank:
        channel, runtime_end = socket.socketpair()
        channel.setblocking(False)
        env[ASSIGNMENT_FD_VARIABLE] = str(runtime_end.fileno())
    assignment = runtime_end.fileno() if runtime_end is not None else None
    fds = LaunchFds(info_w, telemetry_w, seccomp_fd, block_r, assignment)
    # The sandbox's ends: the worker closes its copies once the launcher has started.
    ends = [fd for fd in (info_w, telemetry_w, seccomp_fd, block_r) if fd is not None]
    command: LaunchCommand | None = None
    try:
        command = backend.launch(sandbox_id, spec, env, fds)
        process = await asyncio.create_subprocess_exec(
            *command.argv,
            stdin=asyncio.subprocess.DEVNULL if command.stdin is None else command.stdin,
            stdout=log_w,
            stderr=log_w,
            pass_fds=command.pass_fds,
            env=command.env,
            cwd=command.cwd,
            start_new_session=True,
        )
    except BaseException:
        gate = command.gate if command is not None else None
        for fd in (log_r, telemetry_r, info_r, block_w, gate):
            if fd is not None:
                os.close(fd)
        if command is not None and command.telemetry_fd is not None:
            os.close(command.telemetry_fd)
        if command is not None and command.api_listener is not None:
            command.api_listener.close()
        if channel is not None:
            channel.close()
        raise
    finally:
        for fd in (log_w, *ends):
            os.close(fd)
        if command is not None:
            # Descriptors the backend opened for its launcher alone.
            for fd in set(command.pass_fds) - {*ends, assignment}:
                os.close(fd)
        if runtime_end is not None:
            runtime_end.close()

    if command.telemetry_fd is not None:
        # The backend's own telemetry channel replaces the pipe the sandbox could not inherit.
        os.close(telemetry_r)
        telemetry_r = command.telemetry_fd
    inner_telemetry = command.runtime_telemetry_fd
    launch = Launch(
        process,
        log_r,
        telemetry_r,
        info_r,
        telemetry_w if inner_telemetry is None else inner_telemetry,
        channel,
        started_with=(*env,),
        api_listener=command.api_listener,
    )
    if block_w is not None:
        await _prepare_namespaces(launch, spec, block_w)
    if command.gate is not None:
        await _open_gate(launch, spec, command.gate)
    if launch.api_listener is not None:
        await serve_listener(str(spec.socket_dir / bwrap.SOCKET_NAME), launch.api_listener)
    return launch


async def _prepare_namespaces(launch: Launch, spec: bwrap.LaunchSpec, block_w: int) -> None:
    """Map the sandbox's ids, open its Runtime API listener and connect its network while
    bubblewrap waits, then let it go on: the runtime starts with all three in place.
    bubblewrap reads one byte from the pipe once the ids are mapped and a second before it
    starts the runtime."""
    assert spec.host_id is not None
    try:
        document = await pipes.read_document(launch.info_fd)
        with contextlib.suppress(TypeError, KeyError, ValueError):
            launch.reaper_pid = int(document["child-pid"])
        if launch.reaper_pid is None:
            return
        bwrap.map_ids(launch.reaper_pid, spec.host_id)
        host, _, port = bwrap.RUNTIME_API_ADDRESS.rpartition(":")
        launch.api_listener = network.listen_inside(launch.reaper_pid, host, int(port))
        os.write(block_w, b"1")
        if spec.network is NetworkMode.OUTBOUND:
            launch.network = await network.connect(launch.reaper_pid, spec.cgroup)
        os.write(block_w, b"1")
    except NetworkUnavailable as error:
        log.warning("sandbox network failed pid=%s: %s", launch.process.pid, error)
        launch.kill()
    except OSError as error:
        # bubblewrap died meanwhile: its exit is reported as the init's outcome.
        log.info("sandbox not prepared pid=%s: %s", launch.process.pid, error)
    finally:
        os.close(block_w)


async def _open_gate(launch: Launch, spec: bwrap.LaunchSpec, gate: int) -> None:
    """Link the network namespace the launcher waits in, then let it go on."""
    try:
        pid = launch.process.pid
        launch.network = await network.connect(pid, spec.cgroup, loopback=False)
        os.write(gate, b"\n")
    except NetworkUnavailable as error:
        log.warning("sandbox network failed pid=%s: %s", launch.process.pid, error)
        launch.kill()
    finally:
        os.close(gate)
