"""Scaling budget: a token bucket of new sandboxes per function, refilled continuously."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.clock import FakeClock
from lamina.counting import Throttled
from lamina.counting.budget import RATE_LIMIT_EXCEEDED, ScalingBudget


def test_a_function_may_start_its_whole_budget_at_once_and_then_is_throttled() -> None:
    budget = ScalingBudget(capacity=3, period_s=10, clock=FakeClock())

    for _ in range(3):
        budget.take("f")
    with pytest.raises(Throttled) as refused:
        budget.take("f")

    assert refused.value.reason == RATE_LIMIT_EXCEEDED
    assert refused.value.retry_after_s == pytest.approx(10 / 3)


def test_the_budget_refills_continuously_not_all_at_the_end_of_the_period() -> None:
    clock = FakeClock()
    budget = ScalingBudget(capacity=10, period_s=10, clock=clock)
    for _ in range(10):
        budget.take("f")

    clock.advance(1)
    budget.take("f")
    with pytest.raises(Throttled):
        budget.take("f")


def test_each_function_has_its_own_budget() -> None:
    budget = ScalingBudget(capacity=1, period_s=10, clock=FakeClock())
    budget.take("f")

    budget.take("g")

    assert budget.snapshot().tokens == {"f": 0.0, "g": 0.0}


def test_a_token_given_back_can_be_spent_again() -> None:
    budget = ScalingBudget(capacity=1, period_s=10, clock=FakeClock())
    budget.take("f")

    budget.give_back("f")

    budget.take("f")


def test_the_snapshot_lists_only_functions_whose_bucket_is_not_full() -> None:
    clock = FakeClock()
    budget = ScalingBudget(capacity=4, period_s=4, clock=clock)
    budget.take("f")
    assert budget.snapshot().tokens == {"f": 3.0}

    clock.advance(1)

    assert budget.snapshot().tokens == {}


def test_a_budget_without_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        ScalingBudget(capacity=0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(None), st.floats(0, 2)), max_size=300))
def test_never_more_new_sandboxes_than_capacity_plus_the_refill(ops: list[float | None]) -> None:
    clock = FakeClock()
    budget = ScalingBudget(capacity=5, period_s=10, clock=clock)
    started = 0
    elapsed = 0.0

    for op in ops:
        if op is None:
            try:
                budget.take("f")
                started += 1
            except Throttled:
                assert budget.wait_s("f") > 0
        else:
            clock.advance(op)
            elapsed += op
        assert started <= 5 + elapsed * 0.5 + 1e-9
