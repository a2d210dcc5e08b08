"""Which runtimes this host can run, and how a sandbox reaches each interpreter.

A `python3.X` runtime is runnable when an interpreter of exactly that version answers `-I -S`.
One that lives under /usr is used in place (the sandbox sees /usr read-only); one installed
elsewhere, such as a pyenv build, has its prefix mounted at /var/lang, where Lambda keeps its
runtimes.

The custom runtimes (`provided.al2023`, `provided.al2`) run the function's own `bootstrap`.
They still need one Python inside the sandbox: Lamina's runtime starts the bootstrap (and,
under gVisor, the relay that serves `AWS_LAMBDA_RUNTIME_API`), and it is the `python3` a
bootstrap such as awslambdaric's calls.
The host's /usr/bin/python3 is preferred, as it is on the sandbox's PATH without any mount.
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
CUSTOM_RUNTIMES = ("provided.al2023", "provided.al2")
_SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class Interpreter:
    runtime: str  # "python3.12"
    version: str  # "3.12.1"
    host_executable: str
    host_prefix: str

    @property
    def custom(self) -> bool:
        """A custom runtime: the function's own bootstrap drives the Runtime API."""
        return self.runtime.startswith("provided")

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


def _probe(runtime: str, executable: str, any_version: bool = False) -> Interpreter | None:
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
    if not any_version and not version.startswith(runtime.removeprefix("python") + "."):
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
    found.update(_custom_runtimes(found))
    return found


def _custom_runtimes(pythons: dict[str, Interpreter]) -> dict[str, Interpreter]:
    """The custom runtimes, served by the system Python, else by the newest one found."""
    system = None
    if os.access(_SYSTEM_PYTHON, os.X_OK):
        system = _probe(CUSTOM_RUNTIMES[0], _SYSTEM_PYTHON, any_version=True)
    if system is None and pythons:
        system = pythons[max(pythons, key=lambda name: int(name.split(".")[1]))]
    if system is None:
        log.info("no Python to start a custom bootstrap: custom runtimes are not offered")
        return {}
    return {
        runtime: Interpreter(runtime, system.version, system.host_executable, system.host_prefix)
        for runtime in CUSTOM_RUNTIMES
    }
