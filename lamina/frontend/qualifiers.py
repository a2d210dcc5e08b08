"""What a function name and qualifier designate: $LATEST, a published version or an alias.

Reads (GetFunction and the like) see the configuration the qualifier names; invokes see the
configuration that runs, which differs in two ways: an alias with a second version picks one
of the two by weight, and $LATEST keeps running its previous configuration while an update is
in progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lamina.frontend import validation
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import InvalidParameterValue, ResourceNotFound
from lamina.frontend.routing import pick_version
from lamina.registry.model import LATEST, Alias, FunctionConfig


@dataclass(frozen=True)
class Target:
    """The configuration a request designates, and the qualifier it was designated by."""

    config: FunctionConfig
    qualifier: str | None
    alias: Alias | None = None


def merge_qualifier(given: str | None, in_name: str | None) -> str | None:
    """The qualifier of a request: the Qualifier parameter or the one in the name, not both."""
    if given and in_name and given != in_name:
        raise InvalidParameterValue(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return given or in_name


def resolve(
    ctx: FrontendContext,
    raw_name: str,
    qualifier: str | None = None,
    shape: validation.NameShape = validation.NAMESPACED_FUNCTION_NAME,
    missing_as: str | None = None,
) -> Target:
    """The function, version or alias a path names, or Lambda's 404.

    `missing_as` is the qualifier AWS names in the not-found message when none was given.
    """
    name, named_qualifier = validation.parse_function_name(raw_name, shape, ctx.scope)
    qualifier = merge_qualifier(qualifier, named_qualifier)
    latest = ctx.registry.get(name)
    if latest is None:
        raise not_found(ctx, name, qualifier or missing_as)
    if qualifier is None or qualifier == LATEST:
        return Target(latest, qualifier)

    version = ctx.registry.versions.version(name, qualifier)
    if version is not None:
        return Target(version, qualifier)
    alias = ctx.registry.versions.alias(name, qualifier)
    if alias is None:
        raise not_found(ctx, name, qualifier)
    return Target(version_config(ctx, name, alias.function_version), qualifier, alias)


def find_latest(
    ctx: FrontendContext,
    raw_name: str,
    shape: validation.NameShape = validation.FUNCTION_NAME,
    missing_as: str | None = None,
) -> FunctionConfig:
    """$LATEST of the function a path names, whatever qualifier the name carries.

    Updates, publishing and the function-wide operations always act on $LATEST, as in
    Lambda. `missing_as` is the qualifier AWS names in the not-found message.
    """
    name = validation.parse_function_name(raw_name, shape, ctx.scope)[0]
    latest = ctx.registry.get(name)
    if latest is None:
        raise not_found(ctx, name, missing_as)
    return latest


def version_config(ctx: FrontendContext, name: str, version: str) -> FunctionConfig:
    """The configuration of `version` ($LATEST or a number) of an existing function."""
    if version == LATEST:
        return ctx.registry.require(name)
    config = ctx.registry.versions.version(name, version)
    if config is None:
        raise not_found(ctx, name, version)
    return config


def runnable(ctx: FrontendContext, target: Target, draw: Callable[[], float]) -> FunctionConfig:
    """The configuration an invoke of `target` runs; `draw` is the random source of routing."""
    config = target.config
    if target.alias is not None:
        chosen = pick_version(target.alias.function_version, target.alias.weights, draw)
        config = version_config(ctx, config.name, chosen)
    if config.version == LATEST:
        return ctx.registry.versions.serving(config.name) or config
    return config


def not_found(ctx: FrontendContext, name: str, qualifier: str | None) -> ResourceNotFound:
    return ResourceNotFound(f"Function not found: {ctx.scope.function_arn(name, qualifier)}")
