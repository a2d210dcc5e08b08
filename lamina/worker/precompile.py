"""Lamina's runtime compiled once per interpreter when a worker starts, so that no sandbox
compiles it as it starts (a Python program named on the command line is otherwise compiled at
every start, a few milliseconds for the runtime).

Each interpreter gets a directory holding the runtime's files and `bootstrap.pyc`, compiled by
that interpreter and naming `/var/runtime/bootstrap.py` as its source in tracebacks; sandboxes
see it at /var/runtime and run the bytecode.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from lamina.sandbox import bwrap
from lamina.worker.interpreters import Interpreter

log = logging.getLogger(__name__)

SOURCE = "bootstrap.py"
COMPILED = "bootstrap.pyc"
_COMPILE = (
    "import py_compile, sys; "
    "py_compile.compile(sys.argv[1], cfile=sys.argv[2], dfile=sys.argv[3], doraise=True, "
    "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
)


@dataclass(frozen=True)
class RuntimeFiles:
    """Where a sandbox finds the runtime, and which of its files it runs."""

    directory: Path
    entry: str


async def prepare(root: Path, source_dir: Path, interpreter: Interpreter) -> RuntimeFiles:
    """The runtime compiled for `interpreter` under `root`; its source if that fails."""
    digest = hashlib.sha256(interpreter.host_executable.encode()).hexdigest()[:12]
    target = root / f"{interpreter.version}-{digest}"
    await asyncio.to_thread(_copy_sources, source_dir, target)

    process = await asyncio.create_subprocess_exec(
        interpreter.host_executable, "-I", "-S", "-c", _COMPILE,
        str(target / SOURCE), str(target / COMPILED), f"{bwrap.RUNTIME_DIR}/{SOURCE}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await process.communicate()
    if process.returncode != 0:
        log.warning(
            "runtime not compiled for %s: %s", interpreter.host_executable, errors.decode()[-500:]
        )
        return RuntimeFiles(target, SOURCE)
    return RuntimeFiles(target, COMPILED)


async def prepare_all(
    root: Path, source_dir: Path, interpreters: list[Interpreter]
) -> dict[str, RuntimeFiles]:
    """The runtime for each distinct interpreter, by host executable."""
    distinct = {i.host_executable: i for i in interpreters}
    prepared = await asyncio.gather(*(prepare(root, source_dir, i) for i in distinct.values()))
    return dict(zip(distinct, prepared, strict=True))


def _copy_sources(source_dir: Path, target: Path) -> None:
    # Afresh at every start: the runtime may have changed since the last one.
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source_dir, target, ignore=shutil.ignore_patterns("__pycache__"))
