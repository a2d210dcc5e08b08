"""Starting a sandbox's process: bubblewrap, the pipes it writes its log to, and, for a blank
sandbox of the pool, the channel on which its runtime later receives its function.

A blank sandbox is the same bubblewrap sandbox, started before any function is known: its
runtime has started the interpreter, imported itself and opened the Runtime API relay, and
waits on the channel. Assigning it sends the function's environment (and, for a custom
runtime, the program to become) down the channel once and closes it, so a sandbox is assigned
at most once: it never changes function.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from dataclasses import dataclass

from lamina.orphans import die_with_parent
from lamina.sandbox import bwrap
from lamina.sandbox.output import TELEMETRY_FD_VARIABLE

log = logging.getLogger(__name__)

# Names the runtime's end of the assignment channel inside a blank sandbox.
ASSIGNMENT_FD_VARIABLE = "LAMINA_ASSIGNMENT_FD"
# What a blank runtime writes on its channel once it waits for its function.
READY_MESSAGE = b"ready\n"


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

    async def wait_ready(self) -> bool:
        """Whether the blank runtime reached the point where it waits for its function."""
        assert self.channel is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.sock_recv(self.channel, len(READY_MESSAGE)) == READY_MESSAGE
        except OSError:
            return False

    def assign(self, env: dict[str, str], arguments: list[str]) -> None:
        """Give the blank runtime its function: the environment it runs with (exactly the one
        a cold start passes) and the arguments it continues with."""
        assert self.channel is not None and not self.assigned
        document = {
            "environment": {**env, TELEMETRY_FD_VARIABLE: str(self.telemetry_child_fd)},
            "arguments": arguments,
            "started_with": self.started_with,
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

    def close_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def close_unused(self) -> None:
        """Close the pipes of a launch that never became a sandbox (the pool, which watches
        the channel, closes that)."""
        for fd in (self.log_fd, self.telemetry_fd, self.info_fd):
            try:
                os.close(fd)
            except OSError:
                log.debug("descriptor already closed fd=%d", fd)


async def spawn(spec: bwrap.LaunchSpec, env: dict[str, str], blank: bool = False) -> Launch:
    """Start the sandbox described by `spec`; a blank one waits for its function."""
    log_r, log_w = os.pipe()
    telemetry_r, telemetry_w = os.pipe()
    info_r, info_w = os.pipe()
    child_fds = [info_w, telemetry_w]
    channel = runtime_end = None
    env = {**env, TELEMETRY_FD_VARIABLE: str(telemetry_w)}
    if blank:
        channel, runtime_end = socket.socketpair()
        channel.setblocking(False)
        child_fds.append(runtime_end.fileno())
        env[ASSIGNMENT_FD_VARIABLE] = str(runtime_end.fileno())
    try:
        process = await asyncio.create_subprocess_exec(
            *bwrap.command(spec, info_w, blank),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_w,
            stderr=log_w,
            pass_fds=child_fds,
            env=env,
            start_new_session=True,
            # bubblewrap takes its sandbox with it; a killed worker must take bubblewrap.
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
    except BaseException:
        for fd in (log_r, telemetry_r, info_r):
            os.close(fd)
        if channel is not None:
            channel.close()
        raise
    finally:
        for fd in (log_w, telemetry_w, info_w):
            os.close(fd)
        if runtime_end is not None:
            runtime_end.close()
    return Launch(process, log_r, telemetry_r, info_r, telemetry_w, channel, started_with=(*env,))
