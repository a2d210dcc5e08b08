"""The trace replay behind the keep-alive figures: what it counts, with and without warm-up."""

from __future__ import annotations

from bench.keepalive_replay import TraceFunction, replay, replay_function
from lamina.assignment.keepalive import FixedKeepAlive


def minutes(total: int, invoked: dict[int, int]) -> list[int]:
    return [invoked.get(minute, 0) for minute in range(total)]


def test_a_function_is_cold_at_its_first_invoke_and_warm_within_the_keep_alive() -> None:
    function = TraceFunction("f", 100.0, minutes(30, {0: 3, 5: 1, 25: 1}))

    cold, invocations, idle = replay_function(FixedKeepAlive(600), function)

    # Loaded from the end of minute 0 to minute 11, then after minute 5 to minute 16.
    assert (cold, invocations) == (2, 5)
    assert idle == 100.0 * (4 + 10 + 4)  # to minute 5, to minute 16, and to the end


def test_a_warm_up_teaches_the_policy_but_is_not_counted() -> None:
    function = TraceFunction("f", 100.0, minutes(30, {0: 3, 5: 1, 25: 1}))

    cold, invocations, idle = replay_function(FixedKeepAlive(600), function, warm_up=3)

    assert (cold, invocations) == (1, 2)  # minute 5 was loaded by the warm-up's invoke
    assert idle == 100.0 * (2 + 10 + 4)  # only from minute 3 on


def test_no_policy_beats_one_cold_start_per_function_never_seen_before() -> None:
    seen = TraceFunction("seen", 1.0, minutes(20, {1: 1, 15: 4}))
    unseen = TraceFunction("unseen", 1.0, minutes(20, {12: 2, 13: 2}))

    cold_platform = replay(FixedKeepAlive(600), [seen, unseen])
    warmed_up = replay(FixedKeepAlive(600), [seen, unseen], warm_up=10)

    assert cold_platform.p75_bound == 1 / 5  # the 75th percentile of 1/5 and 1/4, rounded down
    assert warmed_up.p75_bound == 0.0  # "seen" was invoked in the warm-up; 1/4 is the top
    # Minute 15 is past the keep-alive of minute 1's invoke: "seen" is cold once as well.
    assert warmed_up.p75_function_cold_share == 1 / 4
