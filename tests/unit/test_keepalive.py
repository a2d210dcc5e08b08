"""Keep-alive policies: the fixed window and the hybrid idle-time histogram."""

from __future__ import annotations

import pytest

from lamina.assignment.keepalive import (
    MINUTE,
    FixedKeepAlive,
    HybridHistogramPolicy,
    Window,
    policy_named,
)


def invoke_every(policy: HybridHistogramPolicy, minutes: float, times: int) -> Window:
    now = 0.0
    window = Window(0.0, 0.0)
    for _ in range(times):
        policy.started("f", now)
        window = policy.finished("f", now + 1)
        now += 1 + minutes * MINUTE
    return window


def test_the_fixed_policy_keeps_every_sandbox_for_the_same_time() -> None:
    policy = FixedKeepAlive(600)

    policy.started("f", 0)

    assert policy.finished("f", 1) == Window(0.0, 600)
    assert policy.snapshot() == {"f": Window(0.0, 600)}


def test_the_hybrid_policy_uses_its_fallback_until_it_has_seen_idle_times() -> None:
    policy = HybridHistogramPolicy(fallback=Window(0.0, 123.0))

    assert invoke_every(policy, 30, 2) == Window(0.0, 123.0)


def test_a_function_called_every_half_hour_is_unloaded_and_prewarmed_before_the_next_call() -> (
    None
):
    policy = HybridHistogramPolicy()

    window = invoke_every(policy, 30, 20)

    assert 20 * MINUTE <= window.prewarm_s < 30 * MINUTE
    assert window.prewarm_s + window.keep_alive_s > 30 * MINUTE
    assert window.prewarm_s + window.keep_alive_s < 40 * MINUTE


def test_a_function_called_at_scattered_times_is_kept_without_prewarm_past_its_tail() -> None:
    policy = HybridHistogramPolicy()
    now = 0.0
    for gap in [1, 7, 3, 12, 5, 9, 2, 11, 4, 6, 8, 10] * 3:
        policy.started("f", now)
        policy.finished("f", now)
        now += gap * MINUTE

    window = policy.window("f")

    assert window.prewarm_s == 0
    assert 12 * MINUTE < window.keep_alive_s <= 15 * MINUTE


def test_idle_times_beyond_the_histogram_range_send_a_function_to_the_fallback() -> None:
    policy = HybridHistogramPolicy(range_min=60, fallback=Window(0.0, 77.0))

    assert invoke_every(policy, 120, 10) == Window(0.0, 77.0)


def test_overlapping_invokes_record_no_idle_time() -> None:
    policy = HybridHistogramPolicy(min_samples=1, fallback=Window(0.0, 5.0))
    policy.started("f", 0)
    policy.started("f", 1)
    policy.finished("f", 2)

    assert policy.window("f") == Window(0.0, 5.0)


def test_policies_are_named_by_the_command_line_choice() -> None:
    assert isinstance(policy_named("fixed", 60), FixedKeepAlive)
    assert isinstance(policy_named("hybrid"), HybridHistogramPolicy)
    with pytest.raises(ValueError):
        policy_named("lru")
