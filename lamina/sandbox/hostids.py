"""The unprivileged host uid each sandbox's processes run as.

Inside its user namespace a function runs as Lambda's sbx_user1051 (uid 993); on the host that
uid maps to one of a range of ids that no account and no other sandbox uses, so a process that
got out of its namespaces would own nothing and could signal or trace no one. Each sandbox
claims its own id with a file in a directory shared by every worker of the host; a worker
releases its claims when its sandboxes go, and a restarted worker those of its killed
predecessor.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# Far above the ids Debian gives accounts (1000-59999) and subordinate ranges (100000 on).
FIRST_HOST_ID = 3_000_000
HOST_ID_COUNT = 1_000_000
CLAIMS_DIR = Path("/run/lamina/sandbox-ids")


class NoFreeHostId(Exception):
    """Every host id of the range is claimed."""


@dataclass(frozen=True)
class HostIds:
    """A range of host ids and the claims on it; `owner` names the claiming worker."""

    owner: str
    first: int = FIRST_HOST_ID
    count: int = HOST_ID_COUNT
    claims: Path = CLAIMS_DIR

    def claim(self) -> int:
        self.claims.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A random start keeps claims cheap however many are held.
        start = secrets.randbelow(self.count)
        for offset in range(self.count):
            host_id = self.first + (start + offset) % self.count
            try:
                fd = os.open(self.claims / str(host_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as claim:
                claim.write(self.owner)
            return host_id
        raise NoFreeHostId(f"all {self.count} sandbox host ids from {self.first} are in use")

    def release(self, host_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.claims / str(host_id)).unlink()

    def release_all(self) -> int:
        """Release every claim of this owner (a previous run's); returns how many."""
        released = 0
        if not self.claims.is_dir():
            return 0
        for claim in self.claims.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if claim.read_text() == self.owner:
                    claim.unlink()
                    released += 1
        return released
