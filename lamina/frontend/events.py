"""The frontend's side of the event queue: pollers run events through the sync invoke path."""

from __future__ import annotations

import logging

from lamina.assignment import InvokeRequest
from lamina.eventqueue import Attempt, AttemptKind, QueuedEvent, Target
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import (
    LambdaError,
    ResourceConflict,
    ResourceNotFound,
    TooManyRequests,
)
from lamina.frontend.invoke import run
from lamina.frontend.qualifiers import resolve, runnable
from lamina.tenancy import FunctionKey

log = logging.getLogger(__name__)


class FrontendInvoker:
    """The pollers' `Invoker`: counting lease, assignment and worker, as for a sync invoke."""

    def __init__(self, ctx: FrontendContext) -> None:
        self.ctx = ctx

    def target(self, function: str) -> Target | None:
        key = FunctionKey(function)
        ctx = self.ctx.for_account(key.account_id)
        config = ctx.registry.get(key.name)
        if config is None:
            return None
        return Target(config.timeout, ctx.counting.reserved(key.name) == 0)

    async def invoke(self, event: QueuedEvent) -> Attempt:
        # The event runs as its function's account, whose ARN it was sent to.
        ctx = self.ctx.for_account(FunctionKey(event.function).account_id)
        try:
            # The version or alias the event was sent to, resolved (and routed) now.
            config = runnable(ctx, resolve(ctx, event.invoked_arn), ctx.draw)
        except ResourceNotFound as exc:
            return Attempt(AttemptKind.PLATFORM_ERROR, status_code=exc.status)
        if config.state != "Active":
            # Not invocable now (being created or updated): back off and try again.
            return Attempt(AttemptKind.PLATFORM_ERROR, status_code=ResourceConflict.status)
        job = InvokeRequest(
            request_id=event.request_id,
            payload=event.payload,
            invoked_arn=event.invoked_arn,
            trace_id=event.trace_id,
        )
        try:
            result = await run(ctx, config, job)
        except TooManyRequests:
            return Attempt(AttemptKind.THROTTLED, status_code=TooManyRequests.status)
        except LambdaError as exc:
            log.warning("event attempt failed request=%s: %s", event.request_id, exc.message)
            return Attempt(AttemptKind.PLATFORM_ERROR, status_code=exc.status)
        error = "Unhandled" if result.error_type is not None else None
        return Attempt(AttemptKind.RAN, result.payload, error, 200, config.version)
