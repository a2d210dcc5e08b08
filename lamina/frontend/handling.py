"""What the control plane's handlers share: binding to the context, and reading bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from lamina.frontend import permissions
from lamina.frontend.authentication import principal
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import SerializationFailed

Handler = Callable[[FrontendContext, web.Request], Awaitable[web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bind(ctx: FrontendContext, handler: Handler) -> Route:
    """An aiohttp handler that calls `handler` with the context of the caller's account."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(tenant(ctx, request), request)

    return route


def tenant(ctx: FrontendContext, request: web.Request) -> FrontendContext:
    """The context of the account whose key signed `request`: it sees that account alone.

    A function's own credentials act as its role, which may do nothing: they are refused.
    """
    caller = principal(request)
    if caller.session is not None:
        raise permissions.refusal(request, caller.session, caller.region)
    return ctx.for_account(caller.account_id)


async def read_json(request: web.Request) -> dict[str, Any]:
    """The body as one JSON object (an empty body is an empty one), or SerializationException."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SerializationFailed(f"Could not parse request body: {exc}") from exc
    if not isinstance(doc, dict):
        raise SerializationFailed("The request body must be a JSON object")
    return doc
