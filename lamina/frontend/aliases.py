"""Aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias and ListAliases.

An alias points at one version ($LATEST or a number) and may give one more published version
a share of the invokes (`routing.py` picks per invoke). Every change gives the alias a new
RevisionId, and an UpdateAlias naming an older one is refused with 412.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from lamina.frontend import lifecycle, provisioned, validation
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import InvalidParameterValue, ResourceConflict, ResourceNotFound
from lamina.frontend.handling import bind, read_json
from lamina.frontend.qualifiers import find_latest, version_config
from lamina.frontend.shapes import alias_configuration
from lamina.registry.model import LATEST, Alias, FunctionConfig

log = logging.getLogger(__name__)

LIST_PAGE_LIMIT = 50


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    aliases = "/2015-03-31/functions/{name}/aliases"
    return [
        web.post(aliases, bind(ctx, create_alias)),
        web.get(aliases, bind(ctx, list_aliases)),
        web.get(f"{aliases}/{{alias}}", bind(ctx, get_alias)),
        web.put(f"{aliases}/{{alias}}", bind(ctx, update_alias)),
        web.delete(f"{aliases}/{{alias}}", bind(ctx, delete_alias)),
    ]


def _function(ctx: FrontendContext, request: web.Request, qualifier: str | None) -> FunctionConfig:
    """The function of an alias operation; `qualifier` is what AWS's 404 names with it."""
    return find_latest(ctx, request.match_info["name"], missing_as=qualifier)


async def create_alias(ctx: FrontendContext, request: web.Request) -> web.Response:
    asked = validation.validate_alias(await read_json(request))
    _check_weight_count(asked.weights)
    latest = _function(ctx, request, asked.function_version)
    assert asked.function_version is not None  # validate_alias requires it on create
    if ctx.registry.versions.alias(latest.name, asked.name) is not None:
        arn = ctx.scope.function_arn(latest.name, asked.name)
        raise ResourceConflict(f"Alias already exists: {arn}")

    alias = Alias(
        name=asked.name,
        function_version=asked.function_version,
        revision_id=lifecycle.new_revision(),
        description=asked.description or "",
        weights=asked.weights or {},
    )
    _check_targets(ctx, latest.name, alias)
    ctx.registry.versions.put_alias(latest.name, alias)
    log.info("alias created function=%s alias=%s", latest.name, alias.name)
    return web.json_response(alias_configuration(latest.name, alias, ctx.scope), status=201)


async def get_alias(ctx: FrontendContext, request: web.Request) -> web.Response:
    latest = _function(ctx, request, None)
    alias = _alias(ctx, latest.name, request.match_info["alias"], "Cannot find alias arn:")
    return web.json_response(alias_configuration(latest.name, alias, ctx.scope))


async def update_alias(ctx: FrontendContext, request: web.Request) -> web.Response:
    asked = validation.validate_alias(await read_json(request), request.match_info["alias"])
    _check_weight_count(asked.weights)
    latest = _function(ctx, request, None)
    alias = _alias(ctx, latest.name, asked.name, "Alias not found:")
    lifecycle.check_revision(alias.revision_id, asked.revision_id)

    changes: dict[str, Any] = {"revision_id": lifecycle.new_revision()}
    if asked.function_version is not None:
        changes["function_version"] = asked.function_version
    if asked.description is not None:
        changes["description"] = asked.description
    if asked.weights is not None:
        changes["weights"] = asked.weights
    updated = alias.replace(**changes)
    _check_targets(ctx, latest.name, updated)
    ctx.registry.versions.put_alias(latest.name, updated)
    provisioned.sync(ctx, latest.name)
    log.info("alias updated function=%s alias=%s", latest.name, alias.name)
    return web.json_response(alias_configuration(latest.name, updated, ctx.scope))


async def delete_alias(ctx: FrontendContext, request: web.Request) -> web.Response:
    latest = _function(ctx, request, None)
    alias = request.match_info["alias"]
    # Deleting an alias that is not there succeeds, as in Lambda.
    ctx.registry.versions.delete_alias(latest.name, alias)
    ctx.registry.versions.delete_provisioned(latest.name, alias)
    provisioned.sync(ctx, latest.name)
    return web.Response(status=204)


async def list_aliases(ctx: FrontendContext, request: web.Request) -> web.Response:
    marker, max_items = validation.validate_list_params(
        {k: v for k, v in request.query.items() if k != "FunctionVersion"}
    )
    version = request.query.get("FunctionVersion")
    latest = _function(ctx, request, None)

    every = [
        alias
        for alias in ctx.registry.versions.aliases(latest.name)
        if version is None or alias.function_version == version
    ]
    start = 0
    if marker is not None:
        start = next((i for i, alias in enumerate(every) if alias.name > marker), len(every))
    limit = min(max_items, LIST_PAGE_LIMIT)
    page = every[start : start + limit]
    doc: dict[str, Any] = {
        "Aliases": [alias_configuration(latest.name, alias, ctx.scope) for alias in page]
    }
    if start + limit < len(every):
        doc["NextMarker"] = page[-1].name
    return web.json_response(doc)


def _alias(ctx: FrontendContext, function: str, name: str, missing: str) -> Alias:
    alias = ctx.registry.versions.alias(function, name)
    if alias is None:
        raise ResourceNotFound(f"{missing} {ctx.scope.function_arn(function, name)}")
    return alias


def _check_weight_count(weights: dict[str, float] | None) -> None:
    if weights is not None and len(weights) > 1:
        raise InvalidParameterValue(
            "Number of items in AdditionalVersionWeights cannot be greater than 1"
        )


def _check_targets(ctx: FrontendContext, function: str, alias: Alias) -> None:
    """The versions an alias names must exist; a second version must be another number."""
    version_config(ctx, function, alias.function_version)
    for version in alias.weights:
        if version == alias.function_version:
            raise InvalidParameterValue(
                f"Invalid function version {version}. Function version {version} is already "
                "included in routing configuration."
            )
    if alias.weights and alias.function_version == LATEST:
        raise InvalidParameterValue(
            "$LATEST is not supported for an alias pointing to more than 1 version", typed=False
        )
    for version in alias.weights:
        version_config(ctx, function, version)
