"""The namespace isolation backend: how a sandbox is laid out and started under bubblewrap.

Inside, the sandbox sees a read-only /usr (and the interpreter's prefix at /var/lang when it
lives elsewhere), the function's code read-only at /var/task, Lamina's runtime at /var/runtime,
the directory of its Runtime API socket at /var/run/lamina, its own /proc, and a tmpfs /tmp
sized by the function's ephemeral storage. Every namespace is new, so it has no network but
its own loopback, on which the worker serves AWS_LAMBDA_RUNTIME_API (`launch.py`).
"""

from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from lamina.orphans import die_with_parent_argv
from lamina.sandbox import network
from lamina.sandbox.cgroups import SandboxCgroup
from lamina.sandbox.network import NetworkMode
from lamina.sandbox.seccomp import CompiledFilter
from lamina.worker.interpreters import SANDBOX_LANG_DIR, Interpreter

# The uid and gid Lambda's runtimes run as (sbx_user1051).
SANDBOX_UID = 993
SANDBOX_GID = 990
TASK_ROOT = "/var/task"
RUNTIME_DIR = "/var/runtime"
SOCKET_DIR = "/var/run/lamina"
SOCKET_NAME = "runtime.sock"
RUNTIME_API_ADDRESS = "127.0.0.1:9001"
CUSTOM_BOOTSTRAP = f"{TASK_ROOT}/bootstrap"
# Lambda's limit on a function's open files.
MAX_OPEN_FILES = 1024

# Host files a runtime commonly reads; each is mounted only if the host has it.
ETC_FILES = ("/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/mime.types")


class BackendUnavailable(Exception):
    """The host cannot run this isolation backend."""


@dataclass(frozen=True)
class LaunchSpec:
    code_dir: Path
    runtime_dir: Path
    socket_dir: Path
    interpreter: Interpreter
    tmp_size_mb: int
    # Holds the sandbox's own passwd and group files (see `write_identity_files`).
    etc_dir: Path
    seccomp: CompiledFilter | None = None
    cgroup: SandboxCgroup | None = None
    # The unprivileged host uid and gid the sandbox user maps to (see `hostids.py`); without
    # it the sandbox user is the worker's own uid.
    host_id: int | None = None
    # OUTBOUND needs `host_id`: the link is made while bubblewrap waits for its id maps.
    network: NetworkMode = NetworkMode.NONE
    # The function's MemorySize (the cgroup holds the limit; gVisor sizes its process limit
    # by it).
    memory_mb: int = 128
    # The runtime's file in `runtime_dir`: its source, or its bytecode compiled for this
    # interpreter (see `lamina/worker/precompile.py`).
    entry: str = "bootstrap.py"


def write_identity_files(etc_dir: Path) -> None:
    """passwd and group naming the sandbox user, as Lambda's images have them, so that
    getpwuid() and ~ work inside without exposing the host's accounts."""
    etc_dir.mkdir(parents=True, exist_ok=True)
    (etc_dir / "passwd").write_text(
        "root:x:0:0:root:/root:/sbin/nologin\n"
        f"sbx_user1051:x:{SANDBOX_UID}:{SANDBOX_GID}::/home/sbx_user1051:/sbin/nologin\n"
    )
    (etc_dir / "group").write_text(f"root:x:0:\nsbx_user1051:x:{SANDBOX_GID}:\n")
    network.write_resolv_conf(etc_dir)


def require_root() -> None:
    """Sandboxes need root: cgroups, and id maps naming uids other than the worker's."""
    if os.geteuid() != 0:
        raise BackendUnavailable(
            "the namespace backend needs root (cgroups and per-sandbox host uids): "
            "run the worker as root"
        )


def executable() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise BackendUnavailable(
            "bubblewrap is not installed: run `apt-get install bubblewrap` as root"
        )
    return path


def launcher_prefix() -> list[str]:
    """What the sandbox's first process runs before bubblewrap, each step executing the next:
    bubblewrap takes its sandbox with it, so a killed worker must take bubblewrap; and the
    open files limit every process of the sandbox inherits."""
    limit = f"--nofile={MAX_OPEN_FILES}:{MAX_OPEN_FILES}"
    return [*die_with_parent_argv(signal.SIGKILL), "/usr/bin/prlimit", limit, "--"]


def map_ids(child_pid: int, host_id: int) -> None:
    """Write the user namespace's id maps for bubblewrap waiting on its `--userns-block-fd`.

    The namespace's root is the worker's own uid, for bubblewrap's set-up only: it reaches the
    host paths it mounts as their owner. The sandbox user is `host_id`, which the runtime
    becomes (see `command`) before any of the function's code runs.
    """
    with open(f"/proc/{child_pid}/uid_map", "w") as uid_map:
        uid_map.write(f"0 {os.getuid()} 1\n{SANDBOX_UID} {host_id} 1\n")
    with open(f"/proc/{child_pid}/gid_map", "w") as gid_map:
        gid_map.write(f"0 {os.getgid()} 1\n{SANDBOX_GID} {host_id} 1\n")


def command(
    spec: LaunchSpec,
    info_fd: int,
    seccomp_fd: int | None = None,
    userns_block_fd: int | None = None,
    blank: bool = False,
) -> list[str]:
    """The argv that starts the runtime of one sandbox; a blank one waits for its function.

    `seccomp_fd` holds `spec.seccomp`'s program (see `CompiledFilter.open`). With
    `spec.host_id`, bubblewrap waits on `userns_block_fd` until `map_ids` has run.
    """
    args = [
        executable(),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--hostname", "localhost",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
        "--proc", "/proc",
        "--dev", "/dev",
        # Directories bubblewrap would make only for its own user, so that the sandbox
        # user, unprivileged on the host, can reach what is mounted under them.
        "--dir", "/etc",
        "--dir", "/var",
        "--dir", "/var/run",
        "--size", str(spec.tmp_size_mb * 1024 * 1024),
        "--perms", "1777",
        "--tmpfs", "/tmp",
        "--ro-bind", str(spec.code_dir), TASK_ROOT,
        "--ro-bind", str(spec.runtime_dir), RUNTIME_DIR,
        "--ro-bind", str(spec.socket_dir), SOCKET_DIR,
        "--ro-bind", str(spec.etc_dir / "passwd"), "/etc/passwd",
        "--ro-bind", str(spec.etc_dir / "group"), "/etc/group",
        "--chdir", TASK_ROOT,
        "--info-fd", str(info_fd),
    ]  # fmt: skip
    for path in ETC_FILES:
        args += ["--ro-bind-try", path, path]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    if spec.host_id is None:
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)]
    else:
        assert userns_block_fd is not None
        args += ["--unshare-user", "--userns-block-fd", str(userns_block_fd)]
        args += ["--block-fd", str(userns_block_fd)]
    if spec.network is NetworkMode.OUTBOUND:
        args += ["--ro-bind", str(spec.etc_dir / "resolv.conf"), "/etc/resolv.conf"]
    if spec.interpreter.mounted_at_lang:
        args += ["--ro-bind", spec.interpreter.host_prefix, SANDBOX_LANG_DIR]

    argv = [spec.interpreter.sandbox_executable, "-I", "-S", f"{RUNTIME_DIR}/{spec.entry}"]
    argv += ["--blank"] if blank else runtime_arguments(spec.interpreter)
    if spec.host_id is not None:
        # The namespace's root becomes the sandbox user and gives up every capability.
        argv = [
            "/usr/bin/setpriv",
            f"--reuid={SANDBOX_UID}",
            f"--regid={SANDBOX_GID}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *argv,
        ]
    # Nothing of the sandbox runs before its first process is in the sandbox's cgroup.
    join = spec.cgroup.exec_prefix() if spec.cgroup is not None else []
    return [*launcher_prefix(), *join, *args, "--", *argv]


def runtime_arguments(interpreter: Interpreter) -> list[str]:
    """What the runtime is told besides its environment: for a custom runtime, that it
    becomes the function's bootstrap."""
    return ["--exec", CUSTOM_BOOTSTRAP] if interpreter.custom else []
