"""Packages vendored into function zips with `pip install -t`, as Lambda users build them.

Each set is installed once for the Python that custom runtimes find as `python3` in the
sandbox (the host's /usr/bin/python3), then kept under .pytest_cache so later runs need no
package index.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

CACHE = ROOT / ".pytest_cache" / "vendored"
SANDBOX_PYTHON = "/usr/bin/python3"

AWSLAMBDARIC = ("awslambdaric==4.2.2",)
POWERTOOLS = ("aws-lambda-powertools==3.37.0",)


def sandbox_python_version() -> str:
    out = subprocess.run(
        [SANDBOX_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def vendored(requirements: tuple[str, ...]) -> Path:
    """A directory holding `requirements` installed for the sandbox's python3."""
    version = sandbox_python_version()
    target = CACHE / f"py{version}-{'-'.join(requirements).replace('=', '')}"
    if (target / ".complete").exists():
        return target

    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(target), "--python-version", version, "--only-binary=:all:",
        *requirements,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.skip(f"cannot vendor {requirements}: {result.stderr.strip()[-300:]}")
    (target / ".complete").touch()
    return target


def zip_tree(tree: Path | None, files: dict[str, tuple[str | bytes, int]]) -> bytes:
    """A function zip: everything under `tree`, plus `files` at its root, each with its Unix
    mode (content, mode), as `zip` records executables."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(tree.rglob("*")) if tree is not None else []:
            if path.is_file() and "__pycache__" not in path.parts and path.name != ".complete":
                archive.write(path, path.relative_to(tree).as_posix())
        for name, (content, mode) in files.items():
            entry = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            entry.external_attr = (0o100000 | mode) << 16
            archive.writestr(entry, content)
    return buffer.getvalue()
