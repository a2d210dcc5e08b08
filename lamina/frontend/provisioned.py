"""Provisioned concurrency: sandboxes kept initialised for a published version or an alias.

Put, Get, Delete and List ProvisionedConcurrencyConfig(s). A configuration belongs to one
qualifier (a version number or an alias, never $LATEST). Assignment keeps that many sandboxes
of the version (an alias's version) out of the keep-alive reaper, and `fill` starts them; the
configuration is READY once they have all initialised. Invokes use them like any warm sandbox.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from lamina.assignment import NoCapacity, PlatformFailure
from lamina.assignment.manager import version_key
from lamina.frontend import validation
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import (
    InvalidParameterValue,
    ProvisionedConcurrencyConfigNotFound,
    ResourceConflict,
    ResourceNotFound,
)
from lamina.frontend.handling import bind, read_json
from lamina.frontend.qualifiers import find_latest, not_found
from lamina.registry.model import LATEST, FunctionConfig, ProvisionedConcurrency
from lamina.tenancy import FunctionKey

log = logging.getLogger(__name__)


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    path = "/2019-09-30/functions/{name}/provisioned-concurrency"
    return [
        web.put(path, bind(ctx, put_config)),
        web.get(path, bind(ctx, get_or_list)),
        web.delete(path, bind(ctx, delete_config)),
    ]


def _target(
    ctx: FrontendContext, request: web.Request, qualifier: str
) -> tuple[str, FunctionConfig]:
    """The function and the version configuration a qualifier names, or Lambda's 404."""
    raw_name = request.match_info["name"]
    name = validation.parse_function_name(raw_name, validation.FUNCTION_NAME, ctx.scope)[0]
    exists = ctx.registry.get(name) is not None
    if qualifier.isdigit():
        version = ctx.registry.versions.version(name, qualifier) if exists else None
        if version is None:
            raise not_found(ctx, name, qualifier)
        return name, version
    alias = ctx.registry.versions.alias(name, qualifier) if exists else None
    if alias is None:
        raise ResourceNotFound(f"Cannot find alias arn: {ctx.scope.function_arn(name, qualifier)}")
    return name, _version_of(ctx, name, alias.function_version)


def _version_of(ctx: FrontendContext, name: str, version: str) -> FunctionConfig:
    if version == LATEST:
        return ctx.registry.require(name)
    config = ctx.registry.versions.version(name, version)
    assert config is not None  # an alias names an existing version
    return config


async def put_config(ctx: FrontendContext, request: web.Request) -> web.Response:
    qualifier, requested = validation.validate_provisioned(request.query, await read_json(request))
    unpublished = InvalidParameterValue(
        "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
    )
    if qualifier == LATEST:
        raise unpublished
    name, config = _target(ctx, request, qualifier)
    if config.version == LATEST:  # an alias of $LATEST
        raise unpublished
    _check_conflicts(ctx, name, qualifier)
    _check_limits(ctx, requested)

    entry = ProvisionedConcurrency(qualifier, requested, _stamp(ctx))
    ctx.registry.versions.put_provisioned(name, entry)
    log.info(
        "provisioned concurrency set function=%s qualifier=%s n=%d", name, qualifier, requested
    )
    sync(ctx, name)
    return web.json_response(_render(ctx, entry, config), status=202)


async def get_or_list(ctx: FrontendContext, request: web.Request) -> web.Response:
    if request.query.get("List") == "ALL":
        return _list(ctx, request)
    qualifier, _ = validation.validate_provisioned(request.query, None)
    _refuse_latest(qualifier)
    name, config = _target(ctx, request, qualifier)
    entry = ctx.registry.versions.provisioned_for(name, qualifier)
    if entry is None:
        raise ProvisionedConcurrencyConfigNotFound(
            "No Provisioned Concurrency Config found for this function"
        )
    return web.json_response(_render(ctx, entry, config))


async def delete_config(ctx: FrontendContext, request: web.Request) -> web.Response:
    qualifier, _ = validation.validate_provisioned(request.query, None)
    _refuse_latest(qualifier)
    name, _config = _target(ctx, request, qualifier)
    ctx.registry.versions.delete_provisioned(name, qualifier)
    sync(ctx, name)
    return web.Response(status=204)


def _list(ctx: FrontendContext, request: web.Request) -> web.Response:
    name = find_latest(ctx, request.match_info["name"]).name
    items = []
    for entry in ctx.registry.versions.provisioned(name):
        config = _config_of(ctx, name, entry.qualifier)
        if config is not None:
            item = {"FunctionArn": ctx.scope.function_arn(name, entry.qualifier)}
            items.append(item | _render(ctx, entry, config))
    return web.json_response({"ProvisionedConcurrencyConfigs": items})


def _refuse_latest(qualifier: str) -> None:
    if qualifier == LATEST:
        raise InvalidParameterValue(
            "The function resource provided must be an alias or a published version."
        )


def _check_conflicts(ctx: FrontendContext, name: str, qualifier: str) -> None:
    """A version has one provisioned configuration: its own, or that of an alias of it."""
    versions = ctx.registry.versions
    if qualifier.isdigit():
        for alias in versions.aliases(name):
            if alias.function_version == qualifier and versions.provisioned_for(name, alias.name):
                raise ResourceConflict("Version is pointed by a Provisioned Concurrency alias")
        return
    alias = versions.alias(name, qualifier)
    if alias is not None and versions.provisioned_for(name, alias.function_version):
        raise ResourceConflict(
            "Alias can't be used for Provisioned Concurrency configuration on an already "
            "Provisioned version"
        )


def _check_limits(ctx: FrontendContext, requested: int) -> None:
    # Shortcoming: provisioned executions are checked against the pool but not taken out of it.
    unreserved = ctx.counting.unreserved_limit()
    if requested > unreserved:
        raise InvalidParameterValue(
            "Specified ConcurrentExecutions for function is greater than account's unreserved "
            f"concurrency [{unreserved}].",
            typed=False,
        )
    if unreserved - requested < ctx.counting.min_unreserved:
        raise InvalidParameterValue(
            "Specified ConcurrentExecutions for function decreases account's "
            "UnreservedConcurrentExecution below its minimum value of "
            f"[{ctx.counting.min_unreserved}].",
            typed=False,
        )


def _render(
    ctx: FrontendContext, entry: ProvisionedConcurrency, config: FunctionConfig
) -> dict[str, Any]:
    ready = min(ctx.assignment.ready_sandboxes_of(version_key(config)), entry.requested)
    doc: dict[str, Any] = {
        "RequestedProvisionedConcurrentExecutions": entry.requested,
        "AvailableProvisionedConcurrentExecutions": ready,
        "AllocatedProvisionedConcurrentExecutions": ready,
        "Status": "READY" if ready == entry.requested else "IN_PROGRESS",
        "LastModified": entry.last_modified,
    }
    if entry.failure is not None and ready < entry.requested:
        doc["Status"] = "FAILED"
        doc["StatusReason"] = entry.failure
    return doc


def _stamp(ctx: FrontendContext) -> str:
    # ISO 8601 as Lambda writes this member: 2024-01-02T03:04:05+0000.
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(ctx.clock.time()))


def _config_of(ctx: FrontendContext, name: str, qualifier: str) -> FunctionConfig | None:
    if qualifier.isdigit():
        return ctx.registry.versions.version(name, qualifier)
    alias = ctx.registry.versions.alias(name, qualifier)
    return None if alias is None else _version_of(ctx, name, alias.function_version)


def sync(ctx: FrontendContext, name: str) -> None:
    """Make assignment keep the sandboxes `name`'s configurations ask for, and start them."""
    wanted: dict[tuple[str, str, str], tuple[FunctionConfig, ProvisionedConcurrency]] = {}
    for entry in ctx.registry.versions.provisioned(name):
        config = _config_of(ctx, name, entry.qualifier)
        if config is None:
            ctx.registry.versions.delete_provisioned(name, entry.qualifier)
            continue
        wanted[version_key(config)] = (config, entry)
    ctx.assignment.provision(
        ctx.key(name), {key: entry.requested for key, (_, entry) in wanted.items()}
    )
    for config, entry in wanted.values():
        ctx.spawn(fill(ctx, config, entry), name=f"provision-{name}-{entry.qualifier}")


def resume(ctx: FrontendContext) -> None:
    """Start the provisioned sandboxes of every function, after a start of Lamina, and
    replace from then on every provisioned sandbox that dies."""
    ctx.assignment.on_shortfall = lambda key: _sync_key(ctx, FunctionKey(key[0]))
    for account_id in ctx.registry.accounts():
        tenant = ctx.for_account(account_id)
        for name in tenant.registry.names():
            if tenant.registry.versions.provisioned(name):
                sync(tenant, name)


def _sync_key(ctx: FrontendContext, key: FunctionKey) -> None:
    sync(ctx.for_account(key.account_id), key.name)


async def fill(
    ctx: FrontendContext, config: FunctionConfig, entry: ProvisionedConcurrency
) -> None:
    """Start sandboxes of `config` until there are as many as `entry` asks for.

    A configuration that failed is not retried by itself: a new Put starts over.
    """
    if entry.failure is not None:
        return
    key = version_key(config)
    while ctx.assignment.sandboxes_of(key) < entry.requested:
        current = ctx.registry.versions.provisioned_for(config.name, entry.qualifier)
        if current != entry:
            return  # changed or deleted meanwhile; its own fill takes over
        try:
            started = await ctx.assignment.prewarm(config)
        except (NoCapacity, PlatformFailure) as exc:
            _fail(ctx, config, entry, f"Lamina could not start a sandbox: {exc}")
            return
        if not started:
            _fail(ctx, config, entry, "The function's initialization failed.")
            return


def _fail(
    ctx: FrontendContext, config: FunctionConfig, entry: ProvisionedConcurrency, reason: str
) -> None:
    log.warning("provisioned sandboxes not started function=%s: %s", config.name, reason)
    ctx.registry.versions.put_provisioned(config.name, entry.replace(failure=reason))
