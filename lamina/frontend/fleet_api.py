"""Lamina's own endpoints for the fleet: membership, draining, utilisation, placement.

POST /_lamina/v1/workers               a worker registers or renews its lease
GET  /_lamina/v1/workers               members, their packing density, idle memory
POST /_lamina/v1/workers/{id}/drain    stop placing there and reclaim its idle sandboxes
GET  /_lamina/v1/placement/decisions   the last placement decisions with their reasons
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from lamina.assignment import UnknownWorker
from lamina.assignment.manager import PlacementRecord
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import InvalidParameterValue, ResourceNotFound
from lamina.placement.fleet import MembershipError, Occupancy, Registration

log = logging.getLogger(__name__)


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    async def register(request: web.Request) -> web.Response:
        try:
            registration = Registration.from_dict(json.loads(await request.read()))
        except (ValueError, MembershipError) as exc:
            raise InvalidParameterValue(f"Invalid worker registration: {exc}") from exc
        fresh, orphans = ctx.assignment.admit(registration)
        lease_s = ctx.fleet.lease_s
        return web.json_response(
            {"fresh": fresh, "orphans": orphans, "lease_s": lease_s, "renew_s": lease_s / 3}
        )

    async def members(_: web.Request) -> web.Response:
        return web.json_response(fleet_report(ctx))

    async def drain(request: web.Request) -> web.Response:
        worker_id = request.match_info["worker_id"]
        try:
            ctx.assignment.drain(worker_id)
        except UnknownWorker as exc:
            raise ResourceNotFound(f"Worker not found: {worker_id}") from exc
        return web.json_response(_worker(ctx, worker_id, ctx.assignment.occupancy()))

    async def decisions(_: web.Request) -> web.Response:
        return web.json_response({"decisions": [_decision(d) for d in ctx.assignment.decisions]})

    return [
        web.post("/_lamina/v1/workers", register),
        web.get("/_lamina/v1/workers", members),
        web.post("/_lamina/v1/workers/{worker_id}/drain", drain),
        web.get("/_lamina/v1/placement/decisions", decisions),
    ]


def fleet_report(ctx: FrontendContext) -> dict[str, Any]:
    occupancy = ctx.assignment.occupancy()
    workers = [_worker(ctx, w, occupancy) for w in sorted(ctx.fleet.members)]
    capacity = sum(w["memory_capacity_mb"] for w in workers)
    reserved = sum(w["memory_reserved_mb"] for w in workers)
    return {
        "workers": workers,
        "memory_capacity_mb": capacity,
        "memory_reserved_mb": reserved,
        "memory_idle_mb": sum(w["memory_idle_mb"] for w in workers),
        "packing_density": round(reserved / capacity, 4) if capacity else 0.0,
    }


def _worker(ctx: FrontendContext, worker_id: str, occupancy: dict[str, Occupancy]) -> dict:
    member = ctx.fleet.members[worker_id]
    used = occupancy.get(worker_id, Occupancy())
    busy = ctx.assignment.busy_on(worker_id)
    if member.draining:
        status = "drained" if used.sandboxes == 0 else "draining"
    else:
        status = "active" if member.healthy else "unhealthy"
    return {
        "worker_id": worker_id,
        "zone": member.zone,
        "url": member.client.base_url,
        "status": status,
        "healthy": member.healthy,
        "draining": member.draining,
        "memory_capacity_mb": member.memory_capacity_mb,
        "memory_reserved_mb": used.memory_mb,
        "memory_idle_mb": used.memory_idle_mb,
        "packing_density": round(used.memory_mb / member.memory_capacity_mb, 4),
        "sandboxes": used.sandboxes,
        "busy": busy,
    }


def _decision(record: PlacementRecord) -> dict[str, Any]:
    decision = record.decision
    return {
        "time": record.at,
        "function": record.function,
        "memory_mb": record.memory_mb,
        "worker_id": decision.worker_id,
        "rejections": [
            {"worker_id": r.worker_id, "reason": r.reason} for r in decision.rejections
        ],
        "explanation": decision.explain(),
    }
