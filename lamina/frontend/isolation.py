"""The function tag `lamina:isolation`: which isolation backend runs a function's sandboxes.

The tag's value is checked when it is set (CreateFunction, TagResource) against the backends
that exist and those some worker of the fleet offers, and then travels to the workers in the
function's configuration. A function without the tag runs under each worker's default.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import InvalidParameterValue
from lamina.sandbox.backend import ISOLATION_TAG, NAMES


def chosen(ctx: FrontendContext, tags: Mapping[str, str], setting: bool = True) -> str:
    """The backend `tags` choose ("" for the workers' default); refuses one that is unknown
    or that no worker offers.

    With `setting` false the tag is not being set but kept as it was accepted: a backend
    the fleet stopped offering since then does not keep the function's other tags from
    changing (its invokes fail until the tag changes or a worker offers it again).
    """
    name = tags.get(ISOLATION_TAG)
    if name is None:
        return ""
    if not setting and name in NAMES:
        return name
    if name not in NAMES:
        raise InvalidParameterValue(
            f"The tag {ISOLATION_TAG} must name an isolation backend, one of "
            f"{', '.join(NAMES)}; got {name!r}."
        )
    offered = ctx.fleet.isolation()
    if name not in offered:
        raise InvalidParameterValue(
            f"No Lamina worker offers the isolation backend {name}; workers here offer: "
            f"{', '.join(sorted(offered)) or 'none'}."
        )
    return name
