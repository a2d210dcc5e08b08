"""The states of a function as Lambda reports them, and the work that moves it between them.

    create:  State Pending -> Active | Failed
    update:  LastUpdateStatus InProgress -> Successful | Failed   (State stays Active)
    publish: a version copies an Active $LATEST and is Active at once; one published together
             with a create or an update is Pending until that create or update is over

An update stores the new configuration at once, so reads show it, while invokes of $LATEST
keep running the previous one (the registry's *serving* configuration). The update is over
when one sandbox of the new revision has initialised: the first invoke that runs the new code
finds it warm. Until then a second update, or a publish, is refused with 409.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lamina.assignment import NoCapacity, PlatformFailure
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import PreconditionFailed, ResourceConflict
from lamina.registry.model import LATEST, FunctionConfig

log = logging.getLogger(__name__)

CREATING = "The function is being created."
STALE_REVISION = (
    "The Revision Id provided does not match the latest Revision Id. Call the "
    "GetFunction/GetAlias API to retrieve the latest Revision Id"
)
READY = {
    "state": "Active",
    "state_reason": None,
    "state_reason_code": None,
    "last_update_status": "Successful",
    "last_update_status_reason": None,
    "last_update_status_reason_code": None,
}
PENDING_VERSION = {
    "state": "Pending",
    "state_reason": CREATING,
    "state_reason_code": "Creating",
    "last_update_status": None,
    "last_update_status_reason": None,
    "last_update_status_reason_code": None,
}


def in_progress(config: FunctionConfig) -> bool:
    return config.state == "Pending" or config.last_update_status == "InProgress"


def check_updatable(ctx: FrontendContext, config: FunctionConfig, revision_id: str | None) -> None:
    """409 while a create or update is in progress; 412 when `revision_id` is not current."""
    if in_progress(config):
        raise ResourceConflict(
            "The operation cannot be performed at this time. An update is in progress for "
            f"resource: {ctx.scope.function_arn(config.name)}"
        )
    check_revision(config.revision_id, revision_id)


def check_revision(current: str, given: str | None) -> None:
    if given is not None and given != current:
        raise PreconditionFailed(STALE_REVISION)


def new_revision() -> str:
    return str(uuid.uuid4())


def begin_update(
    ctx: FrontendContext, config: FunctionConfig, stamp: str, **changes: object
) -> FunctionConfig:
    """Store an update of $LATEST as InProgress; invokes keep the configuration they run."""
    if ctx.registry.versions.serving(config.name) is None:
        ctx.registry.versions.set_serving(config, config.name)
    updated = config.replace(
        **changes,
        revision_id=new_revision(),
        last_modified=stamp,
        last_update_status="InProgress",
        last_update_status_reason=CREATING,
        last_update_status_reason_code="Creating",
    )
    ctx.registry.put(updated)
    return updated


def start(ctx: FrontendContext, config: FunctionConfig, prewarm: bool) -> None:
    """Run the activation of a create (`prewarm` False) or an update in the background."""
    kind = "update" if prewarm else "create"
    ctx.spawn(activate(ctx, config, prewarm), name=f"{kind}-{config.name}")


def resume(ctx: FrontendContext) -> None:
    """Finish the creates and updates that a stop interrupted: their work was lost with it."""
    for account_id in ctx.registry.accounts():
        tenant = ctx.for_account(account_id)
        for name in tenant.registry.names():
            config = tenant.registry.require(name)
            if in_progress(config):
                start(tenant, config, prewarm=config.state != "Pending")


async def activate(ctx: FrontendContext, config: FunctionConfig, prewarm: bool) -> None:
    """Finish a create or an update of `config`: Active and Successful, or Failed."""
    await asyncio.sleep(0)
    ready = config.replace(**READY, revision_id=new_revision())
    failure = await _prepare(ctx, ready, prewarm)

    current = ctx.registry.get(config.name)
    if current is None or current.last_modified != config.last_modified:
        return  # deleted, or deleted and created again, while it was being prepared
    if failure is None:
        finished = current.replace(**READY, revision_id=ready.revision_id)
    else:
        finished = _failed(current, *failure)
    ctx.registry.put(finished)
    _settle_versions(ctx, config.name, failure)
    outcome = "ready" if failure is None else f"failed ({failure[0]})"
    log.info("function %s %s name=%s", "update" if prewarm else "create", outcome, config.name)

    if failure is None:
        # Invokes of $LATEST now run the new revision; the warm sandbox of it stays.
        ctx.registry.versions.set_serving(None, config.name)
        keep = (config.key, LATEST, finished.revision_id)
        ctx.assignment.retire(config.key, keep=keep, version=LATEST)


async def _prepare(
    ctx: FrontendContext, ready: FunctionConfig, prewarm: bool
) -> tuple[str, str] | None:
    """What a create or update needs before it is over; (reason code, reason) if it failed."""
    if ready.runtime not in ctx.fleet.runtimes():
        return "InvalidRuntime", f"No Lamina worker has the runtime {ready.runtime}."
    if not prewarm:
        return None
    try:
        await ctx.assignment.prewarm(ready)
    except NoCapacity:
        return "InsufficientCapacity", "No Lamina worker can hold this function now."
    except PlatformFailure as exc:
        return "InternalError", f"The new revision could not be started: {exc}"
    return None


def _failed(config: FunctionConfig, code: str, reason: str) -> FunctionConfig:
    if config.state == "Pending":
        return config.replace(state="Failed", state_reason=reason, state_reason_code=code)
    return config.replace(
        last_update_status="Failed",
        last_update_status_reason=reason,
        last_update_status_reason_code=code,
    )


def _settle_versions(ctx: FrontendContext, name: str, failure: tuple[str, str] | None) -> None:
    """Versions published together with the create or update share its outcome."""
    for version in ctx.registry.versions.versions(name):
        if version.state != "Pending":
            continue
        if failure is None:
            settled = version.replace(**READY, revision_id=new_revision())
        else:
            settled = _failed(version, *failure)
        ctx.registry.versions.put_version(settled)
