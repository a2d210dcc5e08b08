"""The control plane: create, read, change and delete functions and their concurrency."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from lamina.counting import ReservationRejected
from lamina.frontend import isolation, lifecycle, validation, versions
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import (
    InvalidParameterValue,
    ResourceConflict,
    ResourceNotFound,
)
from lamina.frontend.handling import bind, read_json
from lamina.frontend.qualifiers import find_latest, merge_qualifier, resolve
from lamina.frontend.shapes import function_configuration
from lamina.registry.model import LATEST, FunctionConfig

log = logging.getLogger(__name__)

LIST_PAGE_LIMIT = 50


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    fn = "/2015-03-31/functions/{name}"
    return [
        web.post("/2015-03-31/functions", bind(ctx, create_function)),
        web.get("/2015-03-31/functions", bind(ctx, list_functions)),
        web.get("/2015-03-31/functions/", bind(ctx, list_functions)),
        web.get(fn, bind(ctx, get_function)),
        web.get(f"{fn}/configuration", bind(ctx, get_configuration)),
        web.put(f"{fn}/configuration", bind(ctx, update_configuration)),
        web.put(f"{fn}/code", bind(ctx, update_code)),
        web.delete(fn, bind(ctx, delete_function)),
        web.put("/2017-10-31/functions/{name}/concurrency", bind(ctx, put_concurrency)),
        web.get("/2019-09-30/functions/{name}/concurrency", bind(ctx, get_concurrency)),
        web.delete("/2017-10-31/functions/{name}/concurrency", bind(ctx, delete_concurrency)),
        web.get("/2016-08-19/account-settings", bind(ctx, account_settings)),
        web.get("/2016-08-19/account-settings/", bind(ctx, account_settings)),
    ]


# Helpers shared by the handlers


def find_function(
    ctx: FrontendContext,
    raw_name: str,
    qualifier: str | None = None,
    shape: validation.NameShape = validation.NAMESPACED_FUNCTION_NAME,
    missing_as: str | None = None,
) -> FunctionConfig:
    """The configuration a path names: $LATEST, a version, or the version of an alias.

    `missing_as` is the qualifier AWS names in the not-found message when none was given.
    """
    return resolve(ctx, raw_name, qualifier, shape, missing_as).config


def now_stamp(ctx: FrontendContext) -> str:
    """LastModified as Lambda writes it: 2020-04-10T19:06:32.563+0000."""
    now = ctx.clock.time()
    millis = int((now % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}+0000"


def reply(doc: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(doc, status=status)


# Functions


async def create_function(ctx: FrontendContext, request: web.Request) -> web.Response:
    body = await read_json(request)
    create = validation.validate_create(body, ctx.fleet.runtimes(), ctx.scope)
    _check_platform_support(ctx, create, body)
    if ctx.registry.get(create.name) is not None:
        raise ResourceConflict(f"Function already exist: {create.name}")

    validation.check_tag_count(create.tags)
    isolation_name = isolation.chosen(ctx, create.tags)
    info = await asyncio.to_thread(ctx.code.put, create.zip_bytes)
    config = FunctionConfig(
        **create.config_fields(),
        account_id=ctx.scope.account_id,
        isolation=isolation_name,
        code_sha256=info.sha256_hex,
        code_size=info.size,
        revision_id=lifecycle.new_revision(),
        last_modified=now_stamp(ctx),
        network=validation.network_mode(create.tags),
    )
    # A concurrent create of the same name may have won while the code was stored.
    if ctx.registry.get(create.name) is not None:
        raise ResourceConflict(f"Function already exist: {create.name}")
    ctx.registry.create(config)
    if create.tags:
        ctx.registry.set_tags(config.name, dict(create.tags))
    log.info("function created name=%s runtime=%s", config.name, config.runtime)

    shown = versions.publish_pending(ctx, config) if create.publish else config
    lifecycle.start(ctx, config, prewarm=False)
    return reply(function_configuration(shown, ctx.scope), status=201)


def _check_platform_support(
    ctx: FrontendContext, create: validation.CreateRequest, body: dict[str, Any]
) -> None:
    """Refuse what the workers cannot honour rather than accept and ignore it."""
    layers = body.get("Layers") or []
    if layers:
        # Lamina publishes no layers, so no layer version can exist.
        raise InvalidParameterValue(f"Layer version {layers[0]} does not exist.")

    offered = ctx.fleet.architectures()
    wanted = create.architectures[0]
    if wanted not in offered:
        raise InvalidParameterValue(
            f"No Lamina worker runs the {wanted} architecture; workers here run: "
            f"{', '.join(sorted(offered)) or 'none'}."
        )


async def get_function(ctx: FrontendContext, request: web.Request) -> web.Response:
    target = resolve(ctx, request.match_info["name"], request.query.get("Qualifier"))
    config = target.config
    sha256 = config.code_sha256
    location = f"{ctx.public_url}/_lamina/v1/code/{sha256}?{ctx.platform.code_query(sha256)}"
    doc: dict[str, Any] = {
        "Configuration": function_configuration(config, ctx.scope, qualifier=target.qualifier),
        "Code": {"RepositoryType": "S3", "Location": location},
    }
    tags = ctx.registry.tags(config.name)
    if tags:
        doc["Tags"] = tags
    reserved = ctx.counting.reserved(config.name)
    if reserved is not None and target.qualifier is None:
        doc["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return reply(doc)


async def get_configuration(ctx: FrontendContext, request: web.Request) -> web.Response:
    target = resolve(ctx, request.match_info["name"], request.query.get("Qualifier"))
    return reply(function_configuration(target.config, ctx.scope, qualifier=target.qualifier))


async def list_functions(ctx: FrontendContext, request: web.Request) -> web.Response:
    marker, max_items = validation.validate_list_params(request.query)
    limit = min(max_items or LIST_PAGE_LIMIT, LIST_PAGE_LIMIT)
    names = ctx.registry.names()
    start = 0
    if marker is not None:
        start = next((i for i, name in enumerate(names) if name > marker), len(names))
    page = names[start : start + limit]

    doc: dict[str, Any] = {
        "Functions": [
            function_configuration(ctx.registry.require(n), ctx.scope, listing=True) for n in page
        ]
    }
    if start + limit < len(names):
        doc["NextMarker"] = page[-1]
    return reply(doc)


async def update_configuration(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = find_latest(ctx, request.match_info["name"])
    body = await read_json(request)
    changes = validation.validate_update_configuration(body, ctx.fleet.runtimes())
    lifecycle.check_updatable(ctx, config, body.get("RevisionId"))

    updated = lifecycle.begin_update(ctx, config, now_stamp(ctx), **changes)
    log.info("function configuration updated name=%s fields=%s", config.name, sorted(changes))
    lifecycle.start(ctx, updated, prewarm=True)
    return reply(function_configuration(updated, ctx.scope))


async def update_code(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = find_latest(ctx, request.match_info["name"])
    body = await read_json(request)
    zip_bytes = validation.validate_update_code(body)
    lifecycle.check_updatable(ctx, config, body.get("RevisionId"))

    info = await asyncio.to_thread(ctx.code.put, zip_bytes)
    updated = lifecycle.begin_update(
        ctx, config, now_stamp(ctx), code_sha256=info.sha256_hex, code_size=info.size
    )
    log.info("function code updated name=%s sha256=%s", config.name, info.sha256_hex[:12])
    lifecycle.start(ctx, updated, prewarm=True)
    if body.get("Publish") is True:
        published = versions.publish_pending(ctx, updated)
        return reply(function_configuration(published, ctx.scope, qualifier=published.version))
    return reply(function_configuration(updated, ctx.scope))


async def delete_function(ctx: FrontendContext, request: web.Request) -> web.Response:
    raw_name = request.match_info["name"]
    name, named = validation.parse_function_name(
        raw_name, validation.NAMESPACED_FUNCTION_NAME, ctx.scope
    )
    qualifier = merge_qualifier(request.query.get("Qualifier"), named)
    if qualifier == LATEST:
        raise InvalidParameterValue(
            "$LATEST version cannot be deleted without deleting the function."
        )
    config = ctx.registry.get(name)
    if config is None:
        raise ResourceNotFound(f"Function not found: {ctx.scope.function_arn(name)}")
    if qualifier is not None:
        versions.delete_version(ctx, config.name, qualifier)
        return web.Response(status=204)

    ctx.registry.delete(config.name)
    ctx.counting.forget(config.name)
    await ctx.events.forget(config.key)
    ctx.assignment.provision(config.key, {})
    ctx.assignment.retire(config.key)
    log.info("function deleted name=%s", config.name)
    return web.Response(status=204)


# Concurrency


def find_unqualified(
    ctx: FrontendContext, raw_name: str, missing_as: str | None = None
) -> FunctionConfig:
    """Concurrency belongs to the function as a whole, never to a version or alias.

    `missing_as` is the qualifier AWS names in the not-found message of some operations.
    """
    if validation.parse_function_name(raw_name, scope=ctx.scope)[1] is not None:
        raise InvalidParameterValue(
            "This operation is permitted on Lambda functions only. Aliases and versions do not "
            "support this operation. Please specify either a function name or an unqualified "
            "function ARN."
        )
    return find_function(ctx, raw_name, shape=validation.FUNCTION_NAME, missing_as=missing_as)


async def put_concurrency(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = find_unqualified(ctx, request.match_info["name"], missing_as=LATEST)
    value = validation.validate_reserved_concurrency(await read_json(request))
    try:
        ctx.counting.set_reserved(config.name, value)
    except ReservationRejected as exc:
        raise InvalidParameterValue(str(exc), typed=exc.typed) from exc
    ctx.registry.set_reserved(config.name, value)
    return reply({"ReservedConcurrentExecutions": value})


async def get_concurrency(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = find_unqualified(ctx, request.match_info["name"])
    value = ctx.counting.reserved(config.name)
    return reply({} if value is None else {"ReservedConcurrentExecutions": value})


async def delete_concurrency(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = find_unqualified(ctx, request.match_info["name"])
    ctx.counting.clear_reserved(config.name)
    ctx.registry.set_reserved(config.name, None)
    return web.Response(status=204)


async def account_settings(ctx: FrontendContext, request: web.Request) -> web.Response:
    counting = ctx.counting
    names = ctx.registry.names()
    total_code = sum(ctx.registry.require(n).code_size for n in names)
    return reply(
        {
            "AccountLimit": {
                "TotalCodeSize": 80530636800,
                "CodeSizeUnzipped": 262144000,
                "CodeSizeZipped": 52428800,
                "ConcurrentExecutions": counting.account_limit,
                "UnreservedConcurrentExecutions": counting.unreserved_limit(),
            },
            "AccountUsage": {"TotalCodeSize": total_code, "FunctionCount": len(names)},
        }
    )
