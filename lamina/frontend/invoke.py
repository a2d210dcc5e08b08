"""Invoke: the data plane's front door, sync (RequestResponse), async (Event) and DryRun."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import uuid

from aiohttp import web

from lamina.assignment import (
    InvokeRequest,
    InvokeResult,
    NoCapacity,
    NoCapacityInTime,
    PlatformFailure,
    ScaleThrottled,
    room_wait_s,
)
from lamina.counting import Throttled
from lamina.counting.service import ACCOUNT_LIMIT_EXCEEDED
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import (
    InvalidParameterValue,
    RequestTooLarge,
    ResourceConflict,
    ServiceError,
    TooManyRequests,
    ValidationFailed,
)
from lamina.frontend.handling import tenant
from lamina.frontend.payload import check_json
from lamina.frontend.qualifiers import resolve, runnable
from lamina.registry.model import LATEST, FunctionConfig

log = logging.getLogger(__name__)

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD = 1024 * 1024
MAX_CLIENT_CONTEXT = 3583
# A lease outlives its invoke by this much before counting gives it up.
LEASE_GRACE_S = 30.0
INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
LOG_TYPES = ("None", "Tail")


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await invoke(tenant(ctx, request), request)

    return [web.post("/2015-03-31/functions/{name}/invocations", route)]


async def invoke(ctx: FrontendContext, request: web.Request) -> web.StreamResponse:
    invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
    log_type = request.headers.get("X-Amz-Log-Type", "None")
    _check_enums(invocation_type, log_type)

    target = resolve(
        ctx, request.match_info["name"], request.query.get("Qualifier"), missing_as=LATEST
    )
    config = runnable(ctx, target, ctx.draw)
    if config.state != "Active":
        raise ResourceConflict(
            "The operation cannot be performed at this time. The function is currently in "
            f"the following state: {config.state}"
        )

    limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    payload = await _read_payload(request, limit)
    client_context = _client_context(request.headers.get("X-Amz-Client-Context"))
    request_id = str(uuid.uuid4())
    headers = {"x-amzn-RequestId": request_id}

    if invocation_type == "DryRun":
        return web.Response(status=204, headers=headers)

    job = InvokeRequest(
        request_id=request_id,
        payload=payload,
        invoked_arn=ctx.scope.function_arn(config.name, target.qualifier),
        trace_id=_trace_id(request_id),
        client_context=client_context,
        want_log_tail=log_type == "Tail",
    )
    if invocation_type == "Event":
        # 202 only once the event is on disk: an accepted event is never lost.
        await ctx.events.accept(
            request_id=request_id,
            function=config.key,
            function_arn=ctx.scope.function_arn(config.name, config.version),
            invoked_arn=job.invoked_arn,
            payload=payload,
            trace_id=job.trace_id,
        )
        return web.Response(status=202, headers=headers)

    result = await run(ctx, config, job)
    return _sync_response(config, result, headers)


async def run(ctx: FrontendContext, config: FunctionConfig, job: InvokeRequest) -> InvokeResult:
    """Count, assign and run one invoke; raises Lambda's error when it cannot run."""
    try:
        # An invoke may wait for room on full workers before it starts and runs.
        ttl = room_wait_s(config) + config.timeout + LEASE_GRACE_S
        lease = ctx.counting.acquire(config.name, ttl, version=config.version)
    except Throttled as exc:
        log.info("throttled function=%s reason=%s", config.name, exc.reason)
        raise TooManyRequests(exc.reason) from exc

    try:
        result = await ctx.assignment.invoke(config, job)
    except NoCapacityInTime as exc:
        # Admitted by counting, but every sandbox Lamina can hold stayed busy: Lamina ran out
        # of concurrency, which Lambda answers as a throttle the caller may retry.
        log.info("throttled function=%s reason=%s: %s", config.name, ACCOUNT_LIMIT_EXCEEDED, exc)
        raise TooManyRequests(ACCOUNT_LIMIT_EXCEEDED) from exc
    except NoCapacity as exc:
        raise ServiceError(f"Lamina has no worker that can hold this function now: {exc}") from exc
    except PlatformFailure as exc:
        raise ServiceError(f"The invoke failed inside Lamina: {exc}") from exc
    except ScaleThrottled as exc:
        log.info("throttled function=%s reason=%s", config.name, exc.reason)
        raise TooManyRequests(exc.reason, _whole_seconds(exc.retry_after_s)) from exc
    finally:
        ctx.counting.release(lease)

    log.debug(  # per invoke: kept off the default level, it costs a formatted line each
        "invoke function=%s request=%s cold=%s error=%s",
        config.name,
        job.request_id,
        result.cold,
        result.error_type,
    )
    return result


def _whole_seconds(seconds: float | None) -> int | None:
    return None if seconds is None else max(1, math.ceil(seconds))


def _sync_response(
    config: FunctionConfig, result: InvokeResult, headers: dict[str, str]
) -> web.Response:
    headers["X-Amz-Executed-Version"] = config.version
    if result.error_type is not None:
        headers["X-Amz-Function-Error"] = "Unhandled"
    if result.log_tail is not None:
        headers["X-Amz-Log-Result"] = result.log_tail
    return web.Response(body=result.payload, headers=headers, content_type="application/json")


def _check_enums(invocation_type: str, log_type: str) -> None:
    problems = []
    if invocation_type not in INVOCATION_TYPES:
        problems.append(
            f"Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(INVOCATION_TYPES)}]"
        )
    if log_type not in LOG_TYPES:
        problems.append(
            f"Value '{log_type}' at 'logType' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(LOG_TYPES)}]"
        )
    if problems:
        count = len(problems)
        noun = "error" if count == 1 else "errors"
        raise ValidationFailed(f"{count} validation {noun} detected: " + "; ".join(problems))


async def _read_payload(request: web.Request, limit: int) -> bytes:
    if (request.content_length or 0) > limit:
        raise _too_large(limit)
    payload = await request.read()
    if len(payload) > limit:
        raise _too_large(limit)
    if not payload.strip():
        return b"{}"
    check_json(payload)
    return payload


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
    )


def _client_context(raw: str | None) -> str | None:
    """X-Amz-Client-Context is base64 of a JSON object; the runtime gets the JSON itself."""
    if raw is None:
        return None
    if len(raw) > MAX_CLIENT_CONTEXT:
        raise InvalidParameterValue(
            f"Client context must be at most {MAX_CLIENT_CONTEXT} bytes, base64 included."
        )
    try:
        text = base64.b64decode(raw, validate=True).decode("utf-8")
        if not isinstance(json.loads(text), dict):
            raise ValueError("not an object")
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameterValue(
            "Client context must be a valid Base64-encoded JSON object."
        ) from exc
    return text


_HEX = re.compile(r"[^0-9a-f]")


def _trace_id(request_id: str) -> str:
    # An X-Ray style id derived from the request id, so logs and traces line up.
    digits = _HEX.sub("", request_id)
    return f"Root=1-{digits[:8]}-{digits[8:32]};Parent={digits[:16]};Sampled=0"
