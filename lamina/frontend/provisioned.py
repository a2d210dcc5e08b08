"""Provisioned concurrency: sandboxes kept initialised for a published version or an alias.

Put, Get, Delete and List ProvisionedConcurrencyConfig(s). A configuration belongs to one
qualifier (a version number or an alias, never $LATEST). Assignment keeps that many sandboxes
of the version (an alias's version) out of the keep-alive reaper, and `fill` starts them; the
configuration is READY once they have all initialised, FAILED (and retried) when they cannot
start. Invokes use them like any warm sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from lamina.assignment import NoCapacity, PlatformFailure
from lamina.assignment.manager import version_key
from lamina.counting import ReservationRejected
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

# The StatusReason of a configuration whose sandboxes fail their init, as Lambda gives it.
INIT_FAILURE = "FUNCTION_ERROR_INIT_FAILURE"
# Backoff between attempts to start the sandboxes of a FAILED configuration.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 300.0


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
    try:
        ctx.counting.check_provisioned(name, config.version, requested)
    except ReservationRejected as exc:
        raise InvalidParameterValue(str(exc), typed=exc.typed) from exc

    entry = ProvisionedConcurrency(qualifier, requested, _stamp(ctx))
    ctx.registry.versions.put_provisioned(name, entry)
    log.info(
        "provisioned concurrency set function=%s qualifier=%s n=%d", name, qualifier, requested
    )
    sync(ctx, name)
    # Lambda answers a put with the allocation just begun, whatever sandboxes of the version
    # are already up (those of a configuration deleted a moment ago included).
    started = _render(ctx, entry, config) | {
        "AvailableProvisionedConcurrentExecutions": 0,
        "AllocatedProvisionedConcurrentExecutions": 0,
        "Status": "IN_PROGRESS",
    }
    started.pop("StatusReason", None)
    return web.json_response(started, status=202)


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
    ctx.counting.set_provisioned(
        name, {key[1]: entry.requested for key, (_, entry) in wanted.items()}
    )
    ctx.assignment.provision(
        ctx.key(name), {key: entry.requested for key, (_, entry) in wanted.items()}
    )
    for _, entry in wanted.values():
        _start_filling(ctx, name, entry.qualifier)


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


def _start_filling(ctx: FrontendContext, name: str, qualifier: str) -> None:
    """Fill a configuration, or wake the fill already running for it to look again now."""
    running = ctx.provisioning.get((ctx.scope.account_id, name, qualifier))
    if running is not None:
        running.set()
        return
    wake = ctx.provisioning[(ctx.scope.account_id, name, qualifier)] = asyncio.Event()
    ctx.spawn(fill(ctx, name, qualifier, wake), name=f"provision-{name}-{qualifier}")


async def fill(ctx: FrontendContext, name: str, qualifier: str, wake: asyncio.Event) -> None:
    """Start sandboxes until the configuration of `qualifier` has as many as it asks for.

    A start that fails marks the configuration FAILED and is retried, as Lambda does, after a
    backoff on the injected clock that doubles up to `RETRY_MAX_S`; a new Put, a deletion or a
    sandbox to replace wakes the retry at once. Ends when the configuration is met or gone.
    """
    delay = RETRY_FIRST_S
    try:
        while True:
            wake.clear()
            entry = ctx.registry.versions.provisioned_for(name, qualifier)
            config = _config_of(ctx, name, qualifier)
            if entry is None or config is None:
                return
            if ctx.assignment.sandboxes_of(version_key(config)) >= entry.requested:
                if entry.failure is not None:
                    ctx.registry.versions.put_provisioned(name, entry.replace(failure=None))
                return

            reason = await _start_one(ctx, config)
            if reason is None:
                delay = RETRY_FIRST_S
                continue
            _fail(ctx, name, qualifier, reason)
            await _sleep_unless_woken(ctx, delay, wake)
            delay = min(2 * delay, RETRY_MAX_S)
    finally:
        ctx.provisioning.pop((ctx.scope.account_id, name, qualifier), None)


async def _start_one(ctx: FrontendContext, config: FunctionConfig) -> str | None:
    """Start one provisioned sandbox; None when it started, else the StatusReason."""
    try:
        failure = await ctx.assignment.prewarm(config, provisioned=True)
    except (NoCapacity, PlatformFailure) as exc:
        return f"Lamina could not start a sandbox: {exc}"
    if failure is None:
        return None
    log.warning(
        "provisioned sandbox init failed function=%s version=%s error=%s: %s",
        config.name, config.version, failure.error_type, failure.payload[:500],
    )  # fmt: skip
    return INIT_FAILURE


async def _sleep_unless_woken(ctx: FrontendContext, delay: float, wake: asyncio.Event) -> None:
    sleeping = asyncio.ensure_future(ctx.clock.sleep(delay))
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeping.cancel()
        woken.cancel()


def _fail(ctx: FrontendContext, name: str, qualifier: str, reason: str) -> None:
    entry = ctx.registry.versions.provisioned_for(name, qualifier)
    if entry is None:
        return
    log.warning("provisioned sandboxes not started function=%s: %s", name, reason)
    if entry.failure != reason:
        ctx.registry.versions.put_provisioned(name, entry.replace(failure=reason))
