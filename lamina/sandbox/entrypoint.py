"""The checks Lambda makes on a custom runtime's `bootstrap` before it starts it.

They run on the host against the unpacked code, so a bootstrap that is missing, not executable
or built for another machine fails at once with Lambda's `Runtime.InvalidEntrypoint` words,
instead of a sandbox that starts and dies.
"""

from __future__ import annotations

import platform
import stat
from pathlib import Path

from lamina.sandbox.bwrap import CUSTOM_BOOTSTRAP, TASK_ROOT

ERROR_TYPE = "Runtime.InvalidEntrypoint"

# The top-level directories a sandbox shares with the host (all of them through /usr).
_HOST_TOPS = frozenset({"usr", "bin", "sbin", "lib", "lib64"})
# ELF e_machine values of the machines Lambda offers (x86_64 and arm64).
_ELF_MACHINES = {"x86_64": 62, "amd64": 62, "aarch64": 183, "arm64": 183}


def problem(code_dir: Path) -> str | None:
    """Why the bootstrap in `code_dir` cannot be started, in Lambda's words; None if it can."""
    path = code_dir / "bootstrap"
    try:
        info = path.stat()
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        return f"Couldn't find valid bootstrap(s): [{CUSTOM_BOOTSTRAP} /opt/bootstrap]"

    if not info.st_mode & 0o111:
        return f"fork/exec {CUSTOM_BOOTSTRAP}: permission denied"

    with open(path, "rb") as handle:
        header = handle.read(256)
    if not _runnable_here(header):
        return f"fork/exec {CUSTOM_BOOTSTRAP}: exec format error"
    if header.startswith(b"#!") and not _interpreter_present(header, code_dir):
        return f"fork/exec {CUSTOM_BOOTSTRAP}: no such file or directory"
    return None


def _interpreter_present(header: bytes, code_dir: Path) -> bool:
    """Whether the script's interpreter exists inside the sandbox, judged from the host.

    The sandbox sees the host's /usr (and /bin, /sbin, /lib* through it) and the code at
    /var/task; an interpreter anywhere else is missing in there.
    """
    words = header[2:].split(b"\n", 1)[0].split()
    if not words:
        return False
    interpreter = words[0].decode(errors="replace")
    if interpreter.startswith(f"{TASK_ROOT}/"):
        return (code_dir / interpreter.removeprefix(f"{TASK_ROOT}/")).is_file()
    top = interpreter.split("/")[1] if interpreter.startswith("/") else ""
    return top in _HOST_TOPS and Path(interpreter).is_file()


def _runnable_here(header: bytes) -> bool:
    """A script with an interpreter line, or an ELF binary for this host's machine."""
    if header.startswith(b"#!"):
        return True
    if not header.startswith(b"\x7fELF") or len(header) < 20:
        return False
    byteorder = "little" if header[5] == 1 else "big"
    machine = int.from_bytes(header[18:20], byteorder)
    return machine == _ELF_MACHINES.get(platform.machine().lower(), -1)
