"""Function code on a worker: fetched once per content hash, unpacked once, shared read-only."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from lamina.registry.code import extract_zip

log = logging.getLogger(__name__)

Fetch = Callable[[str], Awaitable[bytes]]


class CodeCache:
    def __init__(self, root: Path, fetch: Fetch) -> None:
        self.root = root
        self._fetch = fetch
        self._locks: dict[str, asyncio.Lock] = {}
        root.mkdir(parents=True, exist_ok=True)

    async def directory(self, sha256_hex: str) -> Path:
        """The unpacked code of one zip, fetching and unpacking it on first use."""
        target = self.root / sha256_hex
        if target.is_dir():
            return target

        lock = self._locks.setdefault(sha256_hex, asyncio.Lock())
        async with lock:
            if not target.is_dir():
                await self._populate(sha256_hex, target)
        return target

    async def _populate(self, sha256_hex: str, target: Path) -> None:
        data = await self._fetch(sha256_hex)
        fd, name = tempfile.mkstemp(dir=self.root, suffix=".zip")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            await asyncio.to_thread(extract_zip, Path(name), target)
        finally:
            os.unlink(name)
        log.info("code unpacked sha256=%s bytes=%d", sha256_hex[:12], len(data))
