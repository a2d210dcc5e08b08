"""The frontend's HTTP application: Lambda's REST API plus Lamina's own /_lamina endpoints."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lamina.counting import CountingPools
from lamina.frontend import (
    aliases,
    control,
    event_config,
    fleet_api,
    invoke,
    logs_api,
    provisioned,
    tags,
    versions,
)
from lamina.frontend.authentication import signature_check
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import (
    LambdaError,
    NotImplementedOperation,
    RequestTooLarge,
    ServiceError,
)
from lamina.frontend.health import OwnWorkers, health
from lamina.tenancy import qualify

log = logging.getLogger(__name__)

# CreateFunction with a 50 MB zip in base64 is about 70 MB; Lambda's own cap is 70,167,211.
MAX_REQUEST_BYTES = 70_167_211

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def lambda_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate every failure into Lambda's error shape, at this one boundary."""
    try:
        response = await handler(request)
    except LambdaError as exc:
        response = _error_response(exc)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        response = _error_response(
            NotImplementedOperation(f"Lamina does not serve {request.method} {request.path}")
        )
    except web.HTTPRequestEntityTooLarge:
        response = _error_response(_too_large(request))
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unhandled error %s %s", request.method, request.path)
        response = _error_response(ServiceError("Lamina failed to handle the request"))
    if "x-amzn-RequestId" not in response.headers:
        response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return response


# Operations whose bodies can reach the request size limit, by route.
_LARGE_BODY_OPERATIONS = {
    ("POST", "/2015-03-31/functions"): "CreateFunction",
    ("PUT", "/2015-03-31/functions/{name}/code"): "UpdateFunctionCode",
}


def _too_large(request: web.Request) -> RequestTooLarge:
    route = request.match_info.route
    canonical = route.resource.canonical if route.resource is not None else request.path
    operation = _LARGE_BODY_OPERATIONS.get((request.method, canonical), "requested")
    return RequestTooLarge(
        f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the {operation} operation"
    )


def _error_response(exc: LambdaError) -> web.Response:
    status, headers, body = exc.render()
    return web.Response(status=status, headers=headers, body=body)


def _counting(pools: CountingPools) -> dict[str, Any]:
    """Leases in flight and provisioned executions by function key, and each account's
    limits."""
    snapshots = {account: pool.snapshot() for account, pool in pools.accounts().items()}

    def by_key(field: str) -> dict[str, Any]:
        return {
            qualify(account, name): value
            for account, snapshot in snapshots.items()
            for name, value in getattr(snapshot, field).items()
        }

    return {
        "in_flight": by_key("in_flight"),
        "provisioned": by_key("provisioned"),
        "provisioned_in_flight": by_key("provisioned_in_flight"),
        "accounts": {
            account: {
                "account_limit": snapshot.account_limit,
                "unreserved_limit": snapshot.unreserved_limit,
                "unreserved_in_flight": snapshot.unreserved_in_flight,
            }
            for account, snapshot in snapshots.items()
        },
    }


def build_app(ctx: FrontendContext, own_workers: Callable[[], OwnWorkers]) -> web.Application:
    door = signature_check(ctx.verifier, ctx.platform)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[lambda_errors, door])

    async def health_answer(_: web.Request) -> web.Response:
        status, body = health(ctx.fleet, own_workers())
        return web.json_response(body, status=status)

    async def state(_: web.Request) -> web.Response:
        sandboxes = ctx.assignment.snapshot()
        budget = ctx.assignment.budget
        events = await ctx.events.snapshot()
        return web.json_response(
            {
                "counting": _counting(ctx.pools),
                "sandboxes": {
                    "idle": sandboxes.idle,
                    "busy": sandboxes.busy,
                    "initialising": sandboxes.initialising,
                    "per_function": sandboxes.per_function,
                },
                "scaling": {
                    "created": sandboxes.created,
                    "peak_busy": sandboxes.peak_busy,
                    "handoffs": sandboxes.handoffs,
                    "prewarms_scheduled": sandboxes.prewarms_scheduled,
                    "keep_alive": {
                        name: dataclasses.asdict(window)
                        for name, window in sandboxes.keep_alive.items()
                    },
                    "budget": {} if budget is None else dataclasses.asdict(budget.snapshot()),
                },
                "events": {
                    name: dataclasses.asdict(counters)
                    for name, counters in events.per_function.items()
                },
            }
        )

    async def code(request: web.Request) -> web.StreamResponse:
        digest = request.match_info["sha256"]
        if not ctx.code.exists(digest):
            return web.Response(status=404, text="no such code")
        return web.FileResponse(ctx.code.path(digest))

    app.add_routes(
        [
            web.get("/_lamina/health", health_answer),
            web.get("/_lamina/v1/state", state),
            web.get("/_lamina/v1/code/{sha256:[0-9a-f]{64}}", code),
            *control.routes(ctx),
            *versions.routes(ctx),
            *aliases.routes(ctx),
            *tags.routes(ctx),
            *provisioned.routes(ctx),
            *invoke.routes(ctx),
            *event_config.routes(ctx),
            *logs_api.routes(ctx),
            *fleet_api.routes(ctx),
        ]
    )
    return app
