"""Function code: zip archives stored once per content hash, and their safe extraction.

An uploaded archive is inspected before it is stored: Lambda's size limits, and no entry that
could write outside the code directory (`../x`, `/x`, `C:x`, backslash tricks) or that is a link
or another special file. Extraction never trusts that inspection: it checks every entry again,
counts the bytes it really writes, and builds the tree in a temporary directory that is renamed
into place only when complete, so concurrent extractors never see half a tree.
"""

from __future__ import annotations

import base64
import hashlib
import io
import lzma
import os
import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from lamina.frontend.errors import InvalidParameterValue, RequestTooLarge

ZIPPED_LIMIT = 52_428_800
UNZIPPED_LIMIT = 262_144_000

_CHUNK = 1 << 20
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"[A-Za-z]:")
_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."


@dataclass(frozen=True)
class CodeInfo:
    """What Lambda reports about a package: `sha256_b64` is its CodeSha256, `size` its CodeSize."""

    sha256_hex: str
    sha256_b64: str
    size: int
    unzipped_size: int


def inspect_zip(data: bytes) -> CodeInfo:
    """Check an uploaded archive against Lambda's limits and Lamina's safety rules."""
    if len(data) >= ZIPPED_LIMIT:
        raise RequestTooLarge(f"Zipped size must be smaller than {ZIPPED_LIMIT} bytes")

    with _open_archive(io.BytesIO(data)) as archive:
        entries = archive.infolist()
    for entry in entries:
        _check_entry(entry)

    # The sizes the archive declares; extraction counts the real ones.
    unzipped = sum(entry.file_size for entry in entries)
    _check_unzipped(unzipped, UNZIPPED_LIMIT)

    digest = hashlib.sha256(data).digest()
    return CodeInfo(
        sha256_hex=digest.hex(),
        sha256_b64=base64.b64encode(digest).decode(),
        size=len(data),
        unzipped_size=unzipped,
    )


class CodeStore:
    """Zip archives kept once per content, as `root/<sha256 hex>.zip`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> CodeInfo:
        """Inspect and store an archive; storing the same bytes again writes nothing."""
        info = inspect_zip(data)
        target = self.path(info.sha256_hex)
        if not target.exists():
            self._write_atomically(target, data)
        return info

    def path(self, sha256_hex: str) -> Path:
        # The key becomes a file name, so it must be a digest and nothing that walks elsewhere.
        if _HEX_DIGEST.fullmatch(sha256_hex) is None:
            raise ValueError(f"not a SHA-256 hex digest: {sha256_hex!r}")
        return self.root / f"{sha256_hex}.zip"

    def exists(self, sha256_hex: str) -> bool:
        return self.path(sha256_hex).exists()

    def read(self, sha256_hex: str) -> bytes:
        return self.path(sha256_hex).read_bytes()

    def _write_atomically(self, target: Path, data: bytes) -> None:
        handle, temporary = tempfile.mkstemp(prefix=".", suffix=".part", dir=self.root)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o444)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def extract_zip(zip_path: Path, dest: Path, max_bytes: int = UNZIPPED_LIMIT) -> None:
    """Extract an archive to `dest`, which appears complete and read-only, or not at all.

    Does nothing when `dest` already exists: another extractor of the same archive finished.
    """
    if dest.exists():
        return

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        modes = _extract_into(zip_path, staging, max_bytes)
        _seal(staging, modes)
        _move_into_place(staging, dest)
    except BaseException:
        _discard(staging)
        raise


def _open_archive(source: Path | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):
        raise InvalidParameterValue(_UNZIP_FAILED) from None


def _check_entry(entry: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's path inside the code directory; None for the directory itself."""
    if entry.flag_bits & 0x1 or entry.compress_type not in _READABLE_METHODS:
        raise InvalidParameterValue(_UNZIP_FAILED)

    kind = stat.S_IFMT(entry.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise InvalidParameterValue(
            f"The uploaded file contains '{entry.filename}', a symbolic link; Lamina extracts "
            "only regular files and directories."
        )
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InvalidParameterValue(
            f"The uploaded file contains '{entry.filename}', which is neither a regular file nor "
            "a directory."
        )

    return _relative_path(entry.filename)


def _relative_path(name: str) -> PurePosixPath | None:
    # Archives made on Windows may separate with backslashes; treat them as separators too.
    unified = name.replace("\\", "/")
    normal = posixpath.normpath(unified)
    escapes = normal == ".." or normal.startswith("../")
    if unified.startswith("/") or _DRIVE.match(unified) or escapes:
        raise InvalidParameterValue(
            f"The uploaded file contains '{name}', a path that leads outside the function's "
            "code directory."
        )
    return None if normal == "." else PurePosixPath(normal)


def _check_unzipped(size: int, limit: int) -> None:
    if size >= limit:
        raise InvalidParameterValue(f"Unzipped size must be smaller than {limit} bytes")


def _extract_into(zip_path: Path, root: Path, max_bytes: int) -> dict[Path, int]:
    """Write every entry below `root`; returns the final mode of each file written."""
    modes: dict[Path, int] = {}
    written = 0
    with _open_archive(zip_path) as archive:
        for entry in archive.infolist():
            relative = _check_entry(entry)
            if relative is None:
                continue

            target = root.joinpath(*relative.parts)
            try:
                if entry.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = _write_entry(archive, entry, target, written, max_bytes)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                # The archive wants a file and a directory at the same path.
                raise InvalidParameterValue(_UNZIP_FAILED) from None
            modes[target] = _final_mode(entry)
    return modes


def _write_entry(
    archive: zipfile.ZipFile, entry: zipfile.ZipInfo, target: Path, written: int, max_bytes: int
) -> int:
    """Write one file, counting the bytes that really come out; returns the running total."""
    try:
        with archive.open(entry) as source, open(target, "wb") as sink:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                _check_unzipped(written, max_bytes)
                sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError):
        # Damaged data, or a CRC that does not match what came out.
        raise InvalidParameterValue(_UNZIP_FAILED) from None
    return written


def _final_mode(entry: zipfile.ZipInfo) -> int:
    # Only the executable bit survives; everything the function gets is read-only.
    executable = (entry.external_attr >> 16) & 0o111
    return 0o555 if executable else 0o444


def _seal(root: Path, modes: dict[Path, int]) -> None:
    # Modes are applied last: an archive may hold the same file twice, and the later one wins.
    for path, mode in modes.items():
        os.chmod(path, mode)
    for directory, _, _ in os.walk(root, topdown=False):
        os.chmod(directory, 0o555)


def _move_into_place(staging: Path, dest: Path) -> None:
    try:
        os.rename(staging, dest)
    except OSError:
        # Another extractor renamed its complete tree first; that one serves.
        if not dest.exists():
            raise
        _discard(staging)


def _discard(tree: Path) -> None:
    # Sealed directories refuse deletions inside them until they are writable again.
    for directory, _, _ in os.walk(tree):
        os.chmod(directory, 0o755)
    shutil.rmtree(tree, ignore_errors=True)
