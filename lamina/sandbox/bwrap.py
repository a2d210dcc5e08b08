"""The namespace isolation backend: how a sandbox is laid out and started under bubblewrap.

Inside, the sandbox sees a read-only /usr (and the interpreter's prefix at /var/lang when it
lives elsewhere), the function's code read-only at /var/task, Lamina's runtime at /var/runtime,
the directory of its Runtime API socket at /var/run/lamina, its own /proc, and a tmpfs /tmp
sized by the function's ephemeral storage. Every namespace is new, so it has no network but
its own loopback, on which the runtime's relay serves AWS_LAMBDA_RUNTIME_API.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

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

# Host files a runtime commonly reads; each is mounted only if the host has it.
_ETC_FILES = ("/etc/ssl", "/etc/ca-certificates", "/etc/localtime", "/etc/mime.types")


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


def executable() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise BackendUnavailable(
            "bubblewrap is not installed: run `apt-get install bubblewrap` as root"
        )
    return path


def command(spec: LaunchSpec, info_fd: int, blank: bool = False) -> list[str]:
    """The argv that starts the runtime of one sandbox; a blank one waits for its function."""
    args = [
        executable(),
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--uid", str(SANDBOX_UID),
        "--gid", str(SANDBOX_GID),
        "--hostname", "localhost",
        "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin",
        "--symlink", "usr/sbin", "/sbin",
        "--proc", "/proc",
        "--dev", "/dev",
        "--size", str(spec.tmp_size_mb * 1024 * 1024),
        "--tmpfs", "/tmp",
        "--ro-bind", str(spec.code_dir), TASK_ROOT,
        "--ro-bind", str(spec.runtime_dir), RUNTIME_DIR,
        "--ro-bind", str(spec.socket_dir), SOCKET_DIR,
        "--ro-bind", str(spec.etc_dir / "passwd"), "/etc/passwd",
        "--ro-bind", str(spec.etc_dir / "group"), "/etc/group",
        "--chdir", TASK_ROOT,
        "--info-fd", str(info_fd),
    ]  # fmt: skip
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    if spec.interpreter.mounted_at_lang:
        args += ["--ro-bind", spec.interpreter.host_prefix, SANDBOX_LANG_DIR]

    argv = [spec.interpreter.sandbox_executable, "-I", "-S", f"{RUNTIME_DIR}/{spec.entry}"]
    argv += ["--blank"] if blank else runtime_arguments(spec.interpreter)
    return [*args, "--", *argv]


def runtime_arguments(interpreter: Interpreter) -> list[str]:
    """What the runtime is told besides its environment: for a custom runtime, that it opens
    the Runtime API relay and then becomes the function's bootstrap."""
    return ["--exec", CUSTOM_BOOTSTRAP] if interpreter.custom else []
