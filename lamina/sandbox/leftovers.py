"""What a worker's sandboxes leave on the host when the worker dies without stopping them.

A worker killed with SIGKILL cleans nothing: its sandboxes' cgroups stay, with any process
still in them, and so do their host id claims and socket directories. Everything a sandbox
holds is found again by one name, derived from the worker's id and state directory, so the
worker's next start removes it before it starts sandboxes of its own. A sandbox's mounts and
network namespace belong to its processes and go with them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from pathlib import Path

from lamina.sandbox.cgroups import CgroupTree
from lamina.sandbox.hostids import HostIds

log = logging.getLogger(__name__)


def worker_name(worker_id: str, state_dir: Path) -> str:
    """The name the sandboxes of one worker are found by, the same at every start."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"lamina-{worker_id}-{digest}"


def socket_root(name: str) -> Path:
    """The directory of the worker's Runtime API sockets (short: a socket path has 108
    bytes at most)."""
    return Path(tempfile.gettempdir()) / name


async def sweep(cgroups: CgroupTree, host_ids: HostIds, sockets: Path) -> int:
    """Kill and remove every sandbox a previous run of this worker left; returns how many."""
    found = cgroups.existing()
    for cgroup in found:
        log.info(
            "removing a sandbox left by a previous run id=%s pids=%s", cgroup.name, cgroup.pids()
        )
        await cgroup.release()
    # Only now that their processes are gone may other sandboxes run as their ids.
    host_ids.release_all()
    shutil.rmtree(sockets, ignore_errors=True)
    return len(found)
