"""`GET /_lamina/health`: whether this frontend can serve, and which workers it has.

The answer lists the fleet's members as healthy or unhealthy, and the workers this platform
started itself (`expected`) with those of them running and in the fleet now (`up`: one
stopped with SIGSTOP runs on but has left the fleet). A platform missing some of its own
workers still serves on the rest (200, `degraded`); one with no worker it can place on
cannot serve at all (503, `unavailable`), which a load balancer takes as a reason to send
its traffic elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lamina.placement.fleet import Fleet


@dataclass(frozen=True)
class OwnWorkers:
    """The platform as its health answer sees it: whether it has started, the workers it
    started and keeps running, and those of them up now."""

    ready: bool
    expected: tuple[str, ...] = ()
    up: tuple[str, ...] = ()


def health(fleet: Fleet, own: OwnWorkers) -> tuple[int, dict[str, Any]]:
    """The status code and body of the health answer."""
    if not own.ready:
        return 503, {"status": "starting"}
    members = {
        worker_id: "healthy" if member.healthy else "unhealthy"
        for worker_id, member in fleet.members.items()
    }
    # A running worker that left the fleet (stopped, wedged, cut off) serves nothing.
    up = [w for w in own.up if members.get(w) == "healthy"]
    down = set(own.expected) - set(up)
    body: dict[str, Any] = {"workers": members, "expected": list(own.expected), "up": up}
    if not down:
        return 200, {"status": "ok", **body}
    # Some worker can still take invokes: one of this platform's that is up, or a healthy one
    # that joined from elsewhere (a dead own worker stays a member until its lease lapses).
    if any(state == "healthy" and w not in down for w, state in members.items()):
        return 200, {"status": "degraded", **body}
    return 503, {"status": "unavailable", **body}
