"""Published versions: PublishVersion, ListVersionsByFunction and deleting one version.

A version is an immutable snapshot of $LATEST's code and configuration under the next
number. Publishing when nothing changed since the newest version answers that version again.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from lamina.frontend import lifecycle, provisioned, validation
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import InvalidParameterValue, ResourceConflict
from lamina.frontend.handling import bind, read_json
from lamina.frontend.qualifiers import find_latest
from lamina.frontend.shapes import code_sha256_b64, function_configuration
from lamina.registry.model import LATEST, FunctionConfig

log = logging.getLogger(__name__)

LIST_PAGE_LIMIT = 50


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    path = "/2015-03-31/functions/{name}/versions"
    return [web.post(path, bind(ctx, publish_version)), web.get(path, bind(ctx, list_versions))]


async def publish_version(ctx: FrontendContext, request: web.Request) -> web.Response:
    code_sha256, description, revision_id = validation.validate_publish(await read_json(request))
    latest = find_latest(ctx, request.match_info["name"])
    name = latest.name

    lifecycle.check_updatable(ctx, latest, revision_id)
    _check_code_sha256(latest, code_sha256)
    newest = ctx.registry.versions.versions(name)[-1:]
    if newest and _same(newest[0], latest):
        return _published(ctx, newest[0])

    version = _snapshot(ctx, latest, description).replace(**lifecycle.READY)
    ctx.registry.versions.put_version(version)
    # Publishing counts as a change of the function: its RevisionId moves on.
    ctx.registry.put(latest.replace(revision_id=lifecycle.new_revision()))
    log.info("version published name=%s version=%s", name, version.version)
    return _published(ctx, version)


def publish_pending(ctx: FrontendContext, latest: FunctionConfig) -> FunctionConfig:
    """Publish together with a create or an update: Pending until that is over."""
    version = _snapshot(ctx, latest, None).replace(**lifecycle.PENDING_VERSION)
    ctx.registry.versions.put_version(version)
    log.info("version published name=%s version=%s pending", latest.name, version.version)
    return version


def _snapshot(
    ctx: FrontendContext, latest: FunctionConfig, description: str | None
) -> FunctionConfig:
    number = ctx.registry.versions.next_number(latest.name)
    return latest.replace(
        version=str(number),
        revision_id=lifecycle.new_revision(),
        description=latest.description if description is None else description,
    )


def _published(ctx: FrontendContext, version: FunctionConfig) -> web.Response:
    doc = function_configuration(version, ctx.scope, qualifier=version.version)
    return web.json_response(doc, status=201)


def _check_code_sha256(latest: FunctionConfig, given: str | None) -> None:
    current = code_sha256_b64(latest.code_sha256)
    if given is not None and given != current:
        raise InvalidParameterValue(
            f"CodeSHA256 ({given}) is different from current CodeSHA256 in $LATEST "
            f"({current}). Please try again with the CodeSHA256 in $LATEST."
        )


def _same(version: FunctionConfig, latest: FunctionConfig) -> bool:
    """Whether $LATEST is unchanged since `version` was published from it.

    A version keeps the LastModified of the $LATEST it copied, and every update of $LATEST
    moves LastModified on. The isolation backend and network mode come from tags, which
    leave LastModified as it is, yet a version runs under those it was published with.
    """
    same_code = version.code_sha256 == latest.code_sha256
    same_sandbox = (version.isolation, version.network) == (latest.isolation, latest.network)
    return same_code and same_sandbox and version.last_modified == latest.last_modified


async def list_versions(ctx: FrontendContext, request: web.Request) -> web.Response:
    marker, max_items = validation.validate_list_params(request.query)
    latest = find_latest(ctx, request.match_info["name"], validation.NAMESPACED_FUNCTION_NAME)
    name = latest.name

    every = [latest, *ctx.registry.versions.versions(name)]
    start = 0
    if marker is not None:
        start = next((i + 1 for i, c in enumerate(every) if c.version == marker), len(every))
    limit = min(max_items, LIST_PAGE_LIMIT)
    page = every[start : start + limit]
    doc: dict[str, Any] = {
        "Versions": [
            function_configuration(c, ctx.scope, listing=True, qualifier=c.version) for c in page
        ]
    }
    if start + limit < len(every):
        doc["NextMarker"] = page[-1].version
    return web.json_response(doc)


def delete_version(ctx: FrontendContext, name: str, version: str) -> None:
    """Delete one published version; deleting one that is not there succeeds, as in Lambda."""
    if version == LATEST:
        raise InvalidParameterValue(
            "$LATEST version cannot be deleted without deleting the function."
        )
    users = [
        alias.name
        for alias in ctx.registry.versions.aliases(name)
        if version == alias.function_version or version in alias.weights
    ]
    if users:
        raise ResourceConflict(
            "Unable to delete version because the following aliases reference it: "
            f"[{', '.join(users)}]"
        )
    if ctx.registry.versions.delete_version(name, version) is not None:
        ctx.registry.versions.delete_provisioned(name, version)
        provisioned.sync(ctx, name)
        ctx.assignment.retire(ctx.key(name), version=version)
        log.info("version deleted name=%s version=%s", name, version)
