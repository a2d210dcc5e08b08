"""The workers placement may choose from, with the health each last reported."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lamina.placement.engine import WorkerView
from lamina.worker.client import WorkerClient, WorkerUnavailable

log = logging.getLogger(__name__)


@dataclass
class Member:
    client: WorkerClient
    zone: str
    memory_capacity_mb: int
    runtimes: dict[str, str] = field(default_factory=dict)
    architecture: str = "x86_64"
    healthy: bool = True
    draining: bool = False


@dataclass(frozen=True)
class Occupancy:
    """What the assignment table says lives on one worker."""

    memory_mb: int = 0
    sandboxes: int = 0
    per_function: Mapping[str, int] = field(default_factory=dict)
    memory_idle_mb: int = 0


class Fleet:
    def __init__(self) -> None:
        self.members: dict[str, Member] = {}

    async def join(self, client: WorkerClient) -> Member:
        """Add a worker after asking it what it offers."""
        health = await client.health()
        member = Member(
            client=client,
            zone=str(health["zone"]),
            memory_capacity_mb=int(health["memory_capacity_mb"]),
            runtimes=dict(health["runtimes"]),
            architecture=str(health["architecture"]),
        )
        self.members[client.worker_id] = member
        log.info("worker joined id=%s zone=%s", client.worker_id, member.zone)
        return member

    def client(self, worker_id: str) -> WorkerClient:
        return self.members[worker_id].client

    def runtimes(self) -> dict[str, str]:
        """Runtimes some healthy worker can run, with the interpreter version it has."""
        found: dict[str, str] = {}
        for member in self.members.values():
            if member.healthy:
                found.update(member.runtimes)
        return dict(sorted(found.items()))

    def architectures(self) -> set[str]:
        """Architectures some healthy worker runs, in Lambda's names."""
        return {m.architecture for m in self.members.values() if m.healthy}

    def views(self, occupancy: Mapping[str, Occupancy]) -> list[WorkerView]:
        views = []
        for worker_id, member in self.members.items():
            used = occupancy.get(worker_id, Occupancy())
            views.append(
                WorkerView(
                    worker_id=worker_id,
                    zone=member.zone,
                    memory_capacity_mb=member.memory_capacity_mb,
                    memory_reserved_mb=used.memory_mb,
                    healthy=member.healthy,
                    draining=member.draining,
                    sandboxes=used.sandboxes,
                    function_sandboxes=dict(used.per_function),
                    memory_idle_mb=used.memory_idle_mb,
                )
            )
        return views

    def mark_unhealthy(self, worker_id: str, reason: str) -> None:
        """Take a worker out of placement at once; the health check brings it back."""
        member = self.members.get(worker_id)
        if member is not None and member.healthy:
            log.warning("worker unhealthy id=%s: %s", worker_id, reason)
            member.healthy = False

    async def check_health(self) -> None:
        """Ask every worker how it is; one that does not answer leaves placement."""
        await asyncio.gather(*(self._check(m) for m in self.members.values()))

    async def _check(self, member: Member) -> None:
        try:
            await member.client.health()
        except WorkerUnavailable as exc:
            self.mark_unhealthy(member.client.worker_id, str(exc))
            return
        if not member.healthy:
            log.info("worker healthy again id=%s", member.client.worker_id)
        member.healthy = True

    def worker_ids(self) -> Iterable[str]:
        return self.members.keys()
