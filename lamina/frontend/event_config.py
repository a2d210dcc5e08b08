"""Put, Update, Get, Delete and List FunctionEventInvokeConfig: how async events are handled.

Lamina delivers invocation records to Lambda function destinations only; a queue, topic,
bus or bucket ARN is refused rather than accepted and never delivered to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lamina.eventqueue import InvokeConfig
from lamina.frontend import validation
from lamina.frontend.context import FrontendContext
from lamina.frontend.control import find_function, read_json, reply
from lamina.frontend.errors import InvalidParameterValue, ResourceNotFound
from lamina.frontend.handling import bind
from lamina.registry.model import LATEST, FunctionConfig
from lamina.tenancy import FunctionKey

log = logging.getLogger(__name__)

# Services Lambda accepts as destinations; Lamina itself delivers only to the first.
LAMBDA_SERVICE = "lambda"
OTHER_DESTINATION_SERVICES = frozenset({"sqs", "sns", "events", "s3"})
NO_FUNCTION = "The function doesn't exist."


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    path = "/2019-09-25/functions/{name}/event-invoke-config"
    return [
        web.put(path, bind(ctx, put_config)),
        web.post(path, bind(ctx, update_config)),
        web.get(path, bind(ctx, get_config)),
        web.delete(path, bind(ctx, delete_config)),
        web.get(f"{path}/list", bind(ctx, list_configs)),
    ]


def _no_config(arn: str) -> str:
    return f"The function {arn} doesn't have an EventInvokeConfig"


def _target(
    ctx: FrontendContext, request: web.Request, missing: Callable[[str], str]
) -> tuple[FunctionConfig, str]:
    """The function and qualifier a request names; `missing(arn)` words the 404."""
    raw = request.match_info["name"]
    given = request.query.get("Qualifier")
    name, named = validation.parse_function_name(
        raw, validation.NAMESPACED_FUNCTION_NAME, ctx.scope
    )
    qualifier = given or named or LATEST
    try:
        config = find_function(ctx, raw, given)
    except ResourceNotFound as exc:
        raise ResourceNotFound(missing(ctx.scope.function_arn(name, qualifier))) from exc
    return config, qualifier


async def put_config(ctx: FrontendContext, request: web.Request) -> web.Response:
    function, qualifier = _target(ctx, request, lambda _: NO_FUNCTION)
    settings = _settings(ctx, function, await read_json(request))

    config = InvokeConfig(
        function.key,
        qualifier,
        ctx.clock.time(),
        settings.max_retries,
        settings.max_event_age_s,
        settings.on_success,
        settings.on_failure,
    )
    await ctx.events.put_config(config)
    log.info("event invoke config put function=%s qualifier=%s", function.name, qualifier)
    return reply(_shape(ctx, config))


async def update_config(ctx: FrontendContext, request: web.Request) -> web.Response:
    function, qualifier = _target(ctx, request, lambda _: NO_FUNCTION)
    settings = _settings(ctx, function, await read_json(request))
    current = ctx.events.find_config(function.key, qualifier)
    if current is None:
        raise ResourceNotFound(_no_config(ctx.scope.function_arn(function.name, qualifier)))

    config = InvokeConfig(
        function.key,
        qualifier,
        ctx.clock.time(),
        _merged(settings, "MaximumRetryAttempts", settings.max_retries, current.max_retries),
        _merged(
            settings, "MaximumEventAgeInSeconds", settings.max_event_age_s, current.max_event_age_s
        ),
        _merged(settings, "DestinationConfig", settings.on_success, current.on_success),
        _merged(settings, "DestinationConfig", settings.on_failure, current.on_failure),
    )
    await ctx.events.put_config(config)
    log.info("event invoke config updated function=%s qualifier=%s", function.name, qualifier)
    return reply(_shape(ctx, config))


async def get_config(ctx: FrontendContext, request: web.Request) -> web.Response:
    function, qualifier = _target(ctx, request, _no_config)
    config = ctx.events.find_config(function.key, qualifier)
    if config is None:
        raise ResourceNotFound(_no_config(ctx.scope.function_arn(function.name, qualifier)))
    return reply(_shape(ctx, config))


async def delete_config(ctx: FrontendContext, request: web.Request) -> web.Response:
    function, qualifier = _target(ctx, request, _no_config)
    if ctx.events.find_config(function.key, qualifier) is None:
        raise ResourceNotFound(_no_config(ctx.scope.function_arn(function.name, qualifier)))
    await ctx.events.delete_config(function.key, qualifier)
    return web.Response(status=204)


async def list_configs(ctx: FrontendContext, request: web.Request) -> web.Response:
    function, _ = _target(ctx, request, lambda _: NO_FUNCTION)
    marker, max_items = validation.validate_event_invoke_config_list(request.query)
    configs = ctx.events.configs_of(function.key)
    start = int(marker) if marker and marker.isdigit() else 0
    page = configs[start : start + max_items]

    doc: dict[str, Any] = {"FunctionEventInvokeConfigs": [_shape(ctx, c) for c in page]}
    if start + max_items < len(configs):
        doc["NextMarker"] = str(start + max_items)
    return reply(doc)


def _settings(
    ctx: FrontendContext, function: FunctionConfig, body: dict[str, Any]
) -> validation.EventInvokeSettings:
    settings = validation.validate_event_invoke_config(body)
    if not settings.given:
        raise InvalidParameterValue(
            "You must specify at least one of error handling or destination setting."
        )
    for arn in (settings.on_success, settings.on_failure):
        if arn is not None:
            _check_destination(ctx, function, settings, arn)
    return settings


def _check_destination(
    ctx: FrontendContext,
    function: FunctionConfig,
    settings: validation.EventInvokeSettings,
    arn: str,
) -> None:
    parts = arn.split(":")
    service = parts[2] if len(parts) > 2 else ""
    if service not in OTHER_DESTINATION_SERVICES | {LAMBDA_SERVICE}:
        raise InvalidParameterValue(
            f"The provided destination config {_java_destinations(settings)} is invalid."
        )
    if service != LAMBDA_SERVICE:
        raise InvalidParameterValue(
            f"Lamina delivers invocation records only to Lambda functions, not to {arn}."
        )

    name = parts[6] if len(parts) > 6 and parts[5] == "function" else None
    if name == function.name:
        raise InvalidParameterValue("You can't specify the function as a destination for itself.")
    home = ctx.scope.function_arn(name or "")
    qualifier = parts[7] if len(parts) > 7 else LATEST
    if (
        name is None
        or not arn.startswith(home)
        or len(parts) > 8
        or qualifier != LATEST
        or ctx.registry.get(name) is None
    ):
        raise InvalidParameterValue(f"The destination ARN {arn} is invalid.")


def _java_destinations(settings: validation.EventInvokeSettings) -> str:
    """The destination config as AWS's Java service prints it in its message."""

    def member(kind: str, arn: str | None) -> str:
        return "null" if arn is None else f"{kind}(destination={arn})"

    return (
        f"DestinationConfig(onSuccess={member('OnSuccess', settings.on_success)}, "
        f"onFailure={member('OnFailure', settings.on_failure)})"
    )


def _merged(settings: validation.EventInvokeSettings, key: str, given: Any, current: Any) -> Any:
    return given if key in settings.given else current


def _shape(ctx: FrontendContext, config: InvokeConfig) -> dict[str, Any]:
    """FunctionEventInvokeConfig as the model shapes it; unset limits are left out."""
    doc: dict[str, Any] = {
        "LastModified": config.last_modified,
        "FunctionArn": ctx.scope.function_arn(FunctionKey(config.function).name, config.qualifier),
    }
    if config.max_retries is not None:
        doc["MaximumRetryAttempts"] = config.max_retries
    if config.max_event_age_s is not None:
        doc["MaximumEventAgeInSeconds"] = config.max_event_age_s
    doc["DestinationConfig"] = {
        "OnSuccess": {"Destination": config.on_success} if config.on_success else {},
        "OnFailure": {"Destination": config.on_failure} if config.on_failure else {},
    }
    return doc
