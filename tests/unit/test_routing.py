"""Weighted alias routing picks the version by the injected random draw."""

from __future__ import annotations

from lamina.frontend.routing import pick_version


def draws(*values: float):  # type: ignore[no-untyped-def]
    source = iter(values)
    return lambda: next(source)


def test_a_draw_below_the_weight_runs_the_additional_version() -> None:
    assert pick_version("1", {"2": 0.1}, draws(0.05)) == "2"


def test_a_draw_at_or_above_the_weight_runs_the_alias_version() -> None:
    assert pick_version("1", {"2": 0.1}, draws(0.1)) == "1"
    assert pick_version("1", {"2": 0.1}, draws(0.99)) == "1"


def test_an_alias_without_weights_always_runs_its_version() -> None:
    assert pick_version("3", {}, draws(0.0)) == "3"


def test_a_weight_of_zero_never_and_one_always_picks_the_additional_version() -> None:
    assert pick_version("1", {"2": 0.0}, draws(0.0)) == "1"
    assert pick_version("1", {"2": 1.0}, draws(0.999)) == "2"
