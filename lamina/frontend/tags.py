"""Tags of functions (TagResource, UntagResource, ListTags) and GetFunctionCodeSigningConfig.

Tags belong to the function, never to a version or alias, and changing them gives the
function a new RevisionId, as in Lambda. Lamina signs no code, so every function answers
GetFunctionCodeSigningConfig as an unsigned Lambda function does: with no configuration.
"""

from __future__ import annotations

import logging

from aiohttp import web

from lamina.frontend import isolation, lifecycle, validation
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import InvalidParameterValue, ValidationFailed
from lamina.frontend.handling import bind, read_json
from lamina.frontend.qualifiers import find_latest, not_found
from lamina.registry.model import FunctionConfig
from lamina.sandbox.backend import ISOLATION_TAG

log = logging.getLogger(__name__)


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    tags = "/2017-03-31/tags/{resource}"
    return [
        web.post(tags, bind(ctx, tag_resource)),
        web.delete(tags, bind(ctx, untag_resource)),
        web.get(tags, bind(ctx, list_tags)),
        web.get("/2020-06-30/functions/{name}/code-signing-config", bind(ctx, code_signing)),
    ]


async def list_tags(ctx: FrontendContext, request: web.Request) -> web.Response:
    return web.json_response({"Tags": ctx.registry.tags(_tagged(ctx, request).name)})


async def code_signing(ctx: FrontendContext, request: web.Request) -> web.Response:
    find_latest(ctx, request.match_info["name"])
    return web.json_response({})


def _tagged(ctx: FrontendContext, request: web.Request) -> FunctionConfig:
    name, qualifier = validation.parse_taggable(request.match_info["resource"], ctx.scope)
    if qualifier is not None:
        raise InvalidParameterValue(
            "Tags on function aliases and versions are not supported. Please specify a "
            "function ARN."
        )
    config = ctx.registry.get(name)
    if config is None:
        raise not_found(ctx, name, None)
    return config


async def tag_resource(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = _tagged(ctx, request)
    added = validation.validate_tags(await read_json(request))
    tags = ctx.registry.tags(config.name) | added
    validation.check_tag_count(tags)

    _retag(ctx, config, tags, isolation.chosen(ctx, tags, setting=ISOLATION_TAG in added))
    return web.Response(status=204)


async def untag_resource(ctx: FrontendContext, request: web.Request) -> web.Response:
    config = _tagged(ctx, request)
    keys = request.query.getall("tagKeys", [])
    if not keys:
        raise ValidationFailed(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy "
            "constraint: Member must not be null"
        )
    tags = {k: v for k, v in ctx.registry.tags(config.name).items() if k not in keys}

    _retag(ctx, config, tags, isolation.chosen(ctx, tags, setting=False))
    return web.Response(status=204)


def _retag(
    ctx: FrontendContext, config: FunctionConfig, tags: dict[str, str], backend: str
) -> None:
    mode = validation.network_mode(tags)
    ctx.registry.set_tags(config.name, tags)
    current = ctx.registry.require(config.name)
    # The new revision also keeps warm sandboxes of the former backend or mode from serving it.
    ctx.registry.put(
        current.replace(revision_id=lifecycle.new_revision(), isolation=backend, network=mode)
    )
    log.info("function tags set name=%s count=%d", config.name, len(tags))
