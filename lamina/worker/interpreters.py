"""Which `python3.X` runtimes this host can run, and how a sandbox reaches each interpreter.

A runtime is runnable when an interpreter of exactly that version answers `-I -S`. One that
lives under /usr is used in place (the sandbox sees /usr read-only); one installed elsewhere,
such as a pyenv build, has its prefix mounted at /var/lang, where Lambda keeps its runtimes.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SANDBOX_LANG_DIR = "/var/lang"
PYTHON_MINORS = range(8, 15)


@dataclass(frozen=True)
class Interpreter:
    runtime: str  # "python3.12"
    version: str  # "3.12.1"
    host_executable: str
    host_prefix: str

    @property
    def mounted_at_lang(self) -> bool:
        return not self.host_prefix.startswith("/usr")

    @property
    def sandbox_executable(self) -> str:
        if not self.mounted_at_lang:
            return self.host_executable
        return f"{SANDBOX_LANG_DIR}/bin/{Path(self.host_executable).name}"


def _candidates(minor: int) -> list[str]:
    name = f"python3.{minor}"
    found = [f"/usr/bin/{name}", f"/usr/local/bin/{name}"]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found += sorted(glob.glob(f"{pyenv_root}/versions/3.{minor}.*/bin/{name}"), reverse=True)
    on_path = shutil.which(name)
    if on_path and "/shims/" not in on_path:
        found.append(on_path)
    return [path for path in found if os.access(path, os.X_OK)]


def _probe(runtime: str, executable: str) -> Interpreter | None:
    code = "import sys; print(sys.version.split()[0]); print(sys.base_prefix)"
    try:
        out = subprocess.run(
            [executable, "-I", "-S", "-c", code],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("interpreter rejected path=%s error=%s", executable, exc)
        return None

    version, prefix = out[0], out[1]
    if not version.startswith(runtime.removeprefix("python") + "."):
        return None
    return Interpreter(runtime, version, os.path.realpath(executable), prefix)


def discover() -> dict[str, Interpreter]:
    """Find one working interpreter for each python3.X runtime present on this host."""
    found: dict[str, Interpreter] = {}
    for minor in PYTHON_MINORS:
        runtime = f"python3.{minor}"
        for path in _candidates(minor):
            interpreter = _probe(runtime, path)
            if interpreter is not None:
                found[runtime] = interpreter
                break
    log.info("python runtimes found: %s", ", ".join(sorted(found)) or "none")
    return found
