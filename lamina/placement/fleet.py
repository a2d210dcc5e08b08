"""The workers placement may choose from: who joined, where, with what, and for how long.

A worker registers itself over HTTP and renews a membership lease by registering again; one
whose lease runs out leaves the fleet. Expiry is judged with the clock the fleet is given.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lamina.clock import Clock, SystemClock
from lamina.placement.engine import WorkerView
from lamina.worker.client import WorkerClient, WorkerUnavailable

log = logging.getLogger(__name__)

# A worker that has not renewed for this long is out; it renews three times per lease.
LEASE_S = 3.0

T = TypeVar("T")
Connect = Callable[[str, str], WorkerClient]


class MembershipError(Exception):
    """A registration that cannot be accepted."""


@dataclass(frozen=True)
class Registration:
    """What a worker says about itself when it joins or renews."""

    worker_id: str
    zone: str
    url: str
    memory_capacity_mb: int
    runtimes: dict[str, str]
    architecture: str
    # Changes whenever the worker process restarts, so a restart is not taken for a renewal.
    incarnation: str
    idle_sandboxes: tuple[str, ...] = ()
    # The isolation backends the worker offers.
    isolation: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, doc: Any) -> Registration:
        if not isinstance(doc, dict):
            raise MembershipError("a registration is a JSON object")
        text = {"worker_id", "zone", "url", "architecture", "incarnation"}
        missing = sorted((text | {"memory_capacity_mb", "runtimes"}) - doc.keys())
        if missing:
            raise MembershipError(f"registration lacks {', '.join(missing)}")
        for name in sorted(text):
            if not isinstance(doc[name], str) or not doc[name]:
                raise MembershipError(f"{name} must be a non-empty string")
        memory = doc["memory_capacity_mb"]
        if not isinstance(memory, int) or isinstance(memory, bool) or memory <= 0:
            raise MembershipError("memory_capacity_mb must be a positive integer")
        runtimes = doc["runtimes"]
        if not isinstance(runtimes, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in runtimes.items()
        ):
            raise MembershipError("runtimes must map runtime names to versions")
        idle = doc.get("idle_sandboxes", [])
        if not isinstance(idle, list) or not all(isinstance(i, str) for i in idle):
            raise MembershipError("idle_sandboxes must be a list of sandbox ids")
        isolation = doc.get("isolation", [])
        if not isinstance(isolation, list | tuple) or not all(
            isinstance(i, str) for i in isolation
        ):
            raise MembershipError("isolation must be a list of isolation backend names")
        if not doc["url"].startswith(("http://", "https://")):
            raise MembershipError("url must be an http:// or https:// URL")
        return cls(
            worker_id=doc["worker_id"],
            zone=doc["zone"],
            url=doc["url"].rstrip("/"),
            memory_capacity_mb=memory,
            runtimes=dict(runtimes),
            architecture=doc["architecture"],
            incarnation=doc["incarnation"],
            idle_sandboxes=tuple(idle),
            isolation=tuple(isolation),
        )


@dataclass
class Member:
    client: WorkerClient
    zone: str
    memory_capacity_mb: int
    runtimes: dict[str, str] = field(default_factory=dict)
    architecture: str = "x86_64"
    isolation: tuple[str, ...] = ()
    healthy: bool = True
    draining: bool = False
    incarnation: str = ""
    lease_expires: float = math.inf
    # When the worker last renewed, on the fleet's clock.
    renewed_at: float = -math.inf
    # Set when the worker leaves, so calls still waiting on it end at once.
    lost: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Occupancy:
    """What the assignment table says lives on one worker."""

    memory_mb: int = 0
    sandboxes: int = 0
    per_function: Mapping[str, int] = field(default_factory=dict)
    memory_idle_mb: int = 0


class Fleet:
    def __init__(
        self,
        clock: Clock | None = None,
        lease_s: float = LEASE_S,
        connect: Connect | None = None,
    ) -> None:
        self.members: dict[str, Member] = {}
        self.lease_s = lease_s
        self._clock = clock or SystemClock()
        self._connect = connect

    # Membership

    def register(self, registration: Registration) -> bool:
        """Admit a worker or renew its lease; True when it is new to the fleet.

        A worker that comes back under the same id after a restart is a new member: whatever
        the fleet knew of its former self is lost (the caller forgets its sandboxes).
        """
        current = self.members.get(registration.worker_id)
        now = self._clock.monotonic()
        expires = now + self.lease_s
        if current is not None and current.incarnation == registration.incarnation:
            current.lease_expires = expires
            current.renewed_at = now
            if not current.healthy:
                log.info("worker healthy again id=%s", registration.worker_id)
            current.healthy = True
            return False

        if current is not None:
            self.remove(registration.worker_id, "restarted")
        if self._connect is None:
            raise MembershipError("this fleet does not accept registrations")
        self.members[registration.worker_id] = Member(
            client=self._connect(registration.worker_id, registration.url),
            zone=registration.zone,
            memory_capacity_mb=registration.memory_capacity_mb,
            runtimes=registration.runtimes,
            architecture=registration.architecture,
            isolation=registration.isolation,
            incarnation=registration.incarnation,
            lease_expires=expires,
            renewed_at=now,
        )
        log.info(
            "worker registered id=%s zone=%s url=%s memory=%dMB",
            registration.worker_id,
            registration.zone,
            registration.url,
            registration.memory_capacity_mb,
        )
        return True

    def excuse(self, seconds: float) -> None:
        """Extend every lease by `seconds` in which this process could not hear renewals.

        A frontend whose event loop stalled (a burst of a thousand requests on two cores) has
        renewals waiting in its sockets; without this it would give up workers that renewed
        on time, and every invoke they were running with them.
        """
        for member in self.members.values():
            member.lease_expires += seconds

    def renewed_since(self, worker_id: str, moment: float) -> bool:
        """Whether the worker renewed its lease at or after `moment` (a fleet clock reading).

        A call that failed to connect is no sign of a dead worker when the worker renewed
        after the call began: the connection timed out on this process's stalled loop, or the
        worker's own loop was busy, while the worker itself was demonstrably alive.
        """
        member = self.members.get(worker_id)
        return member is not None and member.renewed_at >= moment

    def expired(self) -> list[str]:
        """Workers whose lease has run out, now out of the fleet."""
        now = self._clock.monotonic()
        gone = [w for w, m in self.members.items() if m.lease_expires <= now]
        for worker_id in gone:
            self.remove(worker_id, "membership lease expired")
        return gone

    def remove(self, worker_id: str, reason: str) -> None:
        member = self.members.pop(worker_id, None)
        if member is not None:
            log.warning("worker left id=%s: %s", worker_id, reason)
            member.lost.set()

    async def unless_lost(self, worker_id: str, call: Awaitable[T]) -> T:
        """Await a call to a worker, abandoning it the moment the worker leaves the fleet.

        A worker cut off from the network never answers, so without this a call would wait
        for TCP to give up, long after the lease said the worker was gone.
        """
        task = asyncio.ensure_future(call)
        member = self.members.get(worker_id)
        if member is None:
            task.cancel()
            raise WorkerUnavailable(worker_id, "not a member of the fleet")
        lost = asyncio.ensure_future(member.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            abandoned = not task.done()
            if abandoned:
                task.cancel()
        if abandoned:
            raise WorkerUnavailable(worker_id, "left the fleet during the call")
        return task.result()

    # Views

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

    def isolation(self) -> set[str]:
        """Isolation backends some healthy worker offers."""
        return {name for m in self.members.values() if m.healthy for name in m.isolation}

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
        """Take a worker out of placement at once; its next renewal brings it back."""
        member = self.members.get(worker_id)
        if member is not None and member.healthy:
            log.warning("worker unhealthy id=%s: %s", worker_id, reason)
            member.healthy = False
