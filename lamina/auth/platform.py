"""The platform token: how Lamina's own parts prove themselves to each other.

Workers send it with their registration and their code downloads, operators' tools may use
it for the /_lamina endpoints, and function credentials are sealed with a key derived from it
(`sessions.py`). It is made once per data directory, readable by its owner only; a worker on
another host is given it with `lamina worker --token` (or the environment).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlencode

from lamina.clock import Clock

TOKEN_HEADER = "X-Lamina-Token"
TOKEN_ENV = "LAMINA_PLATFORM_TOKEN"
TOKEN_FILE = "platform.token"
# How long a code download link from GetFunction works: ten minutes, as Lambda's.
CODE_LINK_S = 600


def platform_token(data_dir: Path) -> str:
    """The data directory's platform token, made on first use with owner-only permissions."""
    path = data_dir / TOKEN_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class PlatformAuth:
    """Who may use Lamina's own endpoints (/_lamina): its parts, with the platform token, and
    admin keys (`is_admin`); and the links GetFunction hands out to download code."""

    def __init__(self, token: str, clock: Clock, is_admin: Callable[[str], bool]) -> None:
        self._token = token
        self._clock = clock
        self.is_admin = is_admin

    def is_platform(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._token.encode())

    def code_query(self, sha256_hex: str) -> str:
        """The query that lets anyone download this code for a while, as Lambda's S3 link."""
        expires = int(self._clock.time()) + CODE_LINK_S
        return urlencode({"Expires": expires, "Signature": self._code_seal(sha256_hex, expires)})

    def code_query_valid(self, sha256_hex: str, query: Mapping[str, str]) -> bool:
        try:
            expires = int(query.get("Expires", ""))
        except ValueError:
            return False
        given = query.get("Signature", "")
        sealed = self._code_seal(sha256_hex, expires)
        fresh = self._clock.time() <= expires
        return fresh and hmac.compare_digest(given.encode(), sealed.encode())

    def _code_seal(self, sha256_hex: str, expires: int) -> str:
        message = f"code:{sha256_hex}:{expires}".encode()
        return hmac.new(self._token.encode(), message, hashlib.sha256).hexdigest()
