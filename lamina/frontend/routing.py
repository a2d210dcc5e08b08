"""Weighted alias routing: which version an invoke through an alias runs.

An alias names its version and may give one more version a share of the invokes (a weight
between 0 and 1). Each invoke draws a number in [0, 1) from a random source the caller
injects, so the choice is reproducible in tests; the additional version runs when the draw
falls below its weight.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def pick_version(primary: str, weights: Mapping[str, float], draw: Callable[[], float]) -> str:
    """The version one invoke runs: `primary`, or an additional version by its weight."""
    point = draw()
    for version, weight in sorted(weights.items()):
        if point < weight:
            return version
        point -= weight
    return primary
