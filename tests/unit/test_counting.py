"""The counting service: limits, reservations and lease expiry, on a fake clock."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.clock import FakeClock
from lamina.counting import CountingService, ReservationRejected, Throttled
from lamina.counting.service import ACCOUNT_LIMIT_EXCEEDED, RESERVED_LIMIT_EXCEEDED


def test_unreserved_functions_share_what_the_account_has_left() -> None:
    counting = CountingService(account_limit=200, min_unreserved=100)
    counting.set_reserved("big", 100)

    leases = [counting.acquire("a" if i % 2 else "b", ttl=10) for i in range(100)]

    with pytest.raises(Throttled) as caught:
        counting.acquire("a", ttl=10)
    assert caught.value.reason == ACCOUNT_LIMIT_EXCEEDED
    counting.release(leases[0])
    counting.acquire("a", ttl=10)


def test_reserved_function_is_capped_by_its_own_reservation() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("f", 2)

    counting.acquire("f", ttl=10)
    counting.acquire("f", ttl=10)

    with pytest.raises(Throttled) as caught:
        counting.acquire("f", ttl=10)
    assert caught.value.reason == RESERVED_LIMIT_EXCEEDED
    assert counting.snapshot().in_flight == {"f": 2}
    assert counting.snapshot().unreserved_in_flight == 0


def test_reserved_concurrency_of_zero_throttles_every_invoke() -> None:
    counting = CountingService()
    counting.set_reserved("off", 0)

    with pytest.raises(Throttled) as caught:
        counting.acquire("off", ttl=1)
    assert caught.value.reason == RESERVED_LIMIT_EXCEEDED


def test_a_reservation_must_leave_one_hundred_unreserved() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("a", 800)

    with pytest.raises(ReservationRejected, match=r"minimum value of \[100\]"):
        counting.set_reserved("b", 101)
    counting.set_reserved("b", 100)
    assert counting.unreserved_limit() == 100


def test_changing_a_reservation_counts_the_old_value_out() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("a", 900)

    counting.set_reserved("a", 850)

    assert counting.reserved("a") == 850
    assert counting.unreserved_limit() == 150


def test_a_lease_nobody_releases_expires_after_its_ttl() -> None:
    clock = FakeClock()
    counting = CountingService(account_limit=1000, clock=clock)
    counting.set_reserved("f", 1)
    counting.acquire("f", ttl=5)

    clock.advance(4.9)
    with pytest.raises(Throttled):
        counting.acquire("f", ttl=5)

    clock.advance(0.2)
    counting.acquire("f", ttl=5)


def test_releasing_an_expired_lease_does_not_count_twice() -> None:
    clock = FakeClock()
    counting = CountingService(clock=clock)
    lease = counting.acquire("f", ttl=1)
    clock.advance(2)
    assert counting.snapshot().in_flight == {}

    counting.release(lease)
    counting.release(lease)

    assert counting.snapshot().unreserved_in_flight == 0


def test_leases_taken_before_a_reservation_release_into_the_pool_they_came_from() -> None:
    counting = CountingService(account_limit=1000)
    before = counting.acquire("f", ttl=10)
    counting.set_reserved("f", 5)

    counting.release(before)

    snapshot = counting.snapshot()
    assert snapshot.unreserved_in_flight == 0
    assert snapshot.in_flight == {}


operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from("abc")),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(st.just("advance"), st.floats(0, 3)),
        st.tuples(st.just("reserve"), st.sampled_from("abc"), st.integers(0, 4)),
        st.tuples(st.just("unreserve"), st.sampled_from("abc")),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_never_more_in_flight_than_the_limits_allow(ops: list[tuple]) -> None:
    clock = FakeClock()
    counting = CountingService(account_limit=8, min_unreserved=2, clock=clock)
    held = []

    for op in ops:
        if op[0] == "acquire":
            function = op[1]
            reserved = counting.reserved(function)
            before = counting.snapshot()
            try:
                held.append(counting.acquire(function, ttl=2))
            except Throttled:
                continue
            # A grant is only legal while its pool is below that pool's limit.
            if reserved is None:
                assert before.unreserved_in_flight < before.unreserved_limit
            else:
                pooled = sum(
                    1
                    for lease in held[:-1]
                    if lease.function == function
                    and lease.reserved_pool
                    and lease.expires_at > clock.monotonic()
                )
                assert pooled < reserved
        elif op[0] == "release" and held:
            counting.release(held.pop(op[1] % len(held)))
        elif op[0] == "advance":
            clock.advance(op[1])
        elif op[0] == "reserve":
            with contextlib.suppress(ReservationRejected):
                counting.set_reserved(op[1], op[2])
        elif op[0] == "unreserve":
            counting.clear_reserved(op[1])

        snapshot = counting.snapshot()
        live = [lease for lease in held if lease.expires_at > clock.monotonic()]
        assert snapshot.total_in_flight == len(live)
        assert snapshot.unreserved_in_flight == sum(not lease.reserved_pool for lease in live)
