"""A sandbox's network: `outbound` (the default) or `none`, chosen per function with the
`lamina:network` tag.

Every sandbox has its own network namespace, whose loopback carries the Runtime API
(AWS_LAMBDA_RUNTIME_API) in both modes: under bubblewrap the worker opens that listener inside
the namespace itself (`listen_inside`), so no process of the sandbox relays it. Under
`outbound`, slirp4netns gives the namespace a tap device whose traffic leaves through ordinary
sockets of the host, as any host process's would, but never to the host's loopback: a function
cannot reach Lamina's control plane or any other service listening on 127.0.0.1. Under `none`
the loopback is all there is.

slirp4netns reads what the function sends, so it runs with every capability dropped but the
one it needs, in a mount namespace of its own and under its own seccomp filter; it joins the
sandbox's cgroup, so it is killed with the sandbox and counted against its limits.

A gVisor sandbox gets the same link: its `runsc` starts in a new network namespace, which
slirp4netns links before runsc goes on, and gVisor's netstack takes over the tap device. There
the host's loopback gives no answer, so a connect to it times out instead of failing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import threading
from enum import Enum
from pathlib import Path

from lamina.orphans import die_with_parent_argv
from lamina.sandbox import pipes
from lamina.sandbox.cgroups import SandboxCgroup

log = logging.getLogger(__name__)

TAG = "lamina:network"
# slirp4netns's defaults: the sandbox is 10.0.2.100, its DNS forwarder 10.0.2.3.
NAMESERVER = "10.0.2.3"
_MTU = 65520
_TAP = "tap0"
_LOOPBACK_TRIES = 2000
_LOOPBACK_PAUSE_S = 0.001
_SLAVE_MOUNTS = ["/usr/bin/unshare", "--mount", "--propagation", "slave", "--"]
_CLONE_NEWNET = 0x40000000
_LISTEN_BACKLOG = 64


class NetworkMode(Enum):
    OUTBOUND = "outbound"
    NONE = "none"


class NetworkUnavailable(Exception):
    """The sandbox's outbound network could not be set up."""


def mode_of(tags: dict[str, str]) -> NetworkMode:
    """The network mode a function's tags ask for; ValueError names the allowed values."""
    value = tags.get(TAG, NetworkMode.OUTBOUND.value)
    try:
        return NetworkMode(value)
    except ValueError:
        allowed = " or ".join(m.value for m in NetworkMode)
        raise ValueError(f"Tag {TAG} must be {allowed}, not {value!r}") from None


def write_resolv_conf(etc_dir: Path) -> Path:
    path = etc_dir / "resolv.conf"
    path.write_text(f"nameserver {NAMESERVER}\n")
    return path


async def connect(
    reaper_pid: int, cgroup: SandboxCgroup | None, loopback: bool = True
) -> asyncio.subprocess.Process:
    """Give the network namespace of `reaper_pid` its outbound link; returns once it is up.
    `loopback` waits for bubblewrap to bring the namespace's loopback up first."""
    executable = shutil.which("slirp4netns")
    if executable is None:
        raise NetworkUnavailable("slirp4netns is not installed: apt-get install slirp4netns")
    # The sandbox's loopback comes first: slirp4netns would bring it up before bubblewrap
    # gives it its address, which bubblewrap takes for a failure.
    # A launcher that makes its namespace after exec (unshare) is in the worker's own until
    # then; linking that one would give the worker's namespace the sandbox's tap device.
    await _namespace_of_its_own(reaper_pid)
    if loopback:
        await _loopback_ready(reaper_pid)
    ready_r, ready_w = os.pipe()
    argv = [
        # slirp4netns dies with the worker, even one killed with SIGKILL.
        *die_with_parent_argv(signal.SIGKILL),
        *(cgroup.exec_prefix() if cgroup is not None else []),
        # slirp4netns's own sandbox unmounts its copy of the host's mounts; where the host
        # shares a mount (as `ip netns` does /run/netns), that unmount would reach the host's
        # mounts unless slirp4netns starts in a mount namespace that only receives events.
        *_SLAVE_MOUNTS,
        executable,
        "--configure",
        f"--mtu={_MTU}",
        "--disable-host-loopback",
        "--enable-sandbox",
        "--enable-seccomp",
        f"--ready-fd={ready_w}",
        str(reaper_pid),
        _TAP,
    ]  # fmt: skip
    try:
        helper = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            pass_fds=(ready_w,),
            start_new_session=True,
        )
    finally:
        os.close(ready_w)
    try:
        await pipes.readable(ready_r)
        ready = os.read(ready_r, 1)
    finally:
        os.close(ready_r)
    if not ready:
        with contextlib.suppress(ProcessLookupError):
            helper.kill()
        raise NetworkUnavailable(f"slirp4netns exited with {await helper.wait()}")
    return helper


async def _namespace_of_its_own(pid: int) -> None:
    own = os.stat("/proc/self/ns/net").st_ino
    for _ in range(_LOOPBACK_TRIES):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino != own:
                return
        except OSError as error:
            raise NetworkUnavailable(f"the sandbox ended before its network: {error}") from None
        await asyncio.sleep(_LOOPBACK_PAUSE_S)
    raise NetworkUnavailable("the sandbox never left the worker's network namespace")


async def _loopback_ready(reaper_pid: int) -> None:
    for _ in range(_LOOPBACK_TRIES):
        if _has_loopback_address(reaper_pid):
            return
        await asyncio.sleep(_LOOPBACK_PAUSE_S)
    raise NetworkUnavailable("the sandbox's loopback never came up")


def _has_loopback_address(pid: int) -> bool:
    with open(f"/proc/{pid}/net/fib_trie") as routes:
        return "127.0.0.1" in routes.read()


def tcp_listener(host: str, port: int) -> socket.socket:
    """A non-blocking TCP listener on `host:port` (port 0: one the kernel picks)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(_LISTEN_BACKLOG)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


def listen_inside(pid: int, host: str, port: int) -> socket.socket:
    """A TCP listener on `host:port` in the network namespace of `pid`, owned by the worker.

    A socket stays in the namespace it was made in, so the worker serves the sandbox's
    loopback from its own process. The socket is made by a thread of its own, which enters
    the namespace and ends there: no thread that runs anything else ever changes namespace.
    """
    made: list[socket.socket] = []
    failed: list[OSError] = []

    def make() -> None:
        try:
            with open(f"/proc/{pid}/ns/net") as namespace:
                _setns(namespace.fileno(), _CLONE_NEWNET)
            made.append(tcp_listener(host, port))
        except OSError as error:
            failed.append(error)

    # Starting and joining a thread takes about 90 µs here: short enough to wait for.
    thread = threading.Thread(target=make, name=f"netns-{pid}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return made[0]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, kind: int) -> None:
    """os.setns, which Python has from 3.12 on; through libc before."""
    setns = getattr(os, "setns", None)
    if setns is not None:
        setns(fd, kind)
        return
    if _libc().setns(fd, kind) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
