"""The counting service: limits, reservations and lease expiry, on a fake clock."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamina.clock import FakeClock
from lamina.counting import CountingService, Pool, ReservationRejected, Throttled
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


def test_provisioned_concurrency_without_a_reservation_comes_out_of_the_unreserved_pool() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("r", 100)

    counting.check_provisioned("f", "1", 50)
    counting.set_provisioned("f", {"1": 50})

    assert counting.unreserved_limit() == 850
    assert counting.snapshot().provisioned == {"f": {"1": 50}}
    counting.set_provisioned("f", {})
    assert counting.unreserved_limit() == 900


def test_provisioned_concurrency_inside_a_reservation_leaves_the_unreserved_pool_alone() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("f", 10)

    counting.set_provisioned("f", {"1": 4})

    assert counting.unreserved_limit() == 990


def test_provisioned_concurrency_may_not_leave_less_than_one_hundred_unreserved() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_provisioned("f", {"1": 500})

    with pytest.raises(ReservationRejected) as greater:
        counting.check_provisioned("g", "1", 501)
    with pytest.raises(ReservationRejected) as below:
        counting.check_provisioned("g", "1", 401)
    counting.check_provisioned("g", "1", 400)
    # Replacing a version's configuration counts its old value out.
    counting.check_provisioned("f", "1", 900)

    assert str(greater.value) == (
        "Specified ConcurrentExecutions for function is greater than account's unreserved "
        "concurrency [500]."
    )
    assert str(below.value) == (
        "Specified ConcurrentExecutions for function decreases account's "
        "UnreservedConcurrentExecution below its minimum value of [100]."
    )
    assert not greater.value.typed and not below.value.typed


def test_provisioned_concurrency_may_not_exceed_the_functions_reservation() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("f", 5)
    counting.set_provisioned("f", {"1": 3})

    with pytest.raises(ReservationRejected) as exc:
        counting.check_provisioned("f", "2", 3)
    counting.check_provisioned("f", "2", 2)

    assert str(exc.value) == (
        "Requested Provisioned Concurrency should not be greater than the "
        "reservedConcurrentExecution for function"
    )
    assert exc.value.typed


def test_a_reservation_may_not_go_below_the_functions_provisioned_concurrency() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_provisioned("f", {"1": 2})

    with pytest.raises(ReservationRejected) as exc:
        counting.set_reserved("f", 1)

    assert str(exc.value) == (
        " ReservedConcurrentExecutions  1 should not be lower than function's total "
        "provisioned concurrency [2]."
    )


def test_a_reservation_takes_in_the_functions_provisioned_concurrency() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_provisioned("f", {"1": 400})
    counting.set_reserved("g", 100)

    # 1000 - 100 (g) - 800 (f, its 400 provisioned inside) leaves 100: allowed.
    counting.set_reserved("f", 800)

    assert counting.unreserved_limit() == 100
    with pytest.raises(ReservationRejected):
        counting.set_reserved("f", 801)


def test_a_provisioned_version_runs_in_its_own_pool_and_spills_over_into_the_unreserved() -> None:
    counting = CountingService(account_limit=102, min_unreserved=100)
    counting.set_provisioned("f", {"1": 2})

    pools = [counting.acquire("f", ttl=10, version="1").pool for _ in range(3)]
    latest = counting.acquire("g", ttl=10, version="$LATEST")

    assert pools == [Pool.PROVISIONED, Pool.PROVISIONED, Pool.UNRESERVED]
    assert latest.pool is Pool.UNRESERVED
    assert counting.snapshot().provisioned_in_flight == {"f": {"1": 2}}
    assert counting.snapshot().unreserved_in_flight == 2


def test_with_all_of_its_reservation_provisioned_only_the_provisioned_version_runs() -> None:
    counting = CountingService(account_limit=1000)
    counting.set_reserved("f", 1)
    counting.set_provisioned("f", {"1": 1})

    with pytest.raises(Throttled) as exc:
        counting.acquire("f", ttl=10, version="$LATEST")
    lease = counting.acquire("f", ttl=10, version="1")

    assert exc.value.reason == RESERVED_LIMIT_EXCEEDED
    assert lease.pool is Pool.PROVISIONED
    with pytest.raises(Throttled):
        counting.acquire("f", ttl=10, version="1")


operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from("abc"), st.sampled_from(["1", "2"])),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(st.just("crash"), st.integers(0, 50)),
        st.tuples(st.just("advance"), st.floats(0, 3)),
        st.tuples(st.just("reserve"), st.sampled_from("abc"), st.integers(0, 4)),
        st.tuples(st.just("unreserve"), st.sampled_from("abc")),
        st.tuples(
            st.just("provision"),
            st.sampled_from("abc"),
            st.sampled_from(["1", "2"]),
            st.integers(0, 3),
        ),
    ),
    max_size=200,
)


def _live(held: list, clock: FakeClock) -> list:
    return [lease for lease in held if lease.expires_at > clock.monotonic()]


def _check_grant(lease, before, held: list, clock: FakeClock, reserved: int | None) -> None:
    """A grant is only legal while its pool is below that pool's limit."""
    others = [x for x in _live(held, clock) if x.function == lease.function]
    versions = before.provisioned.get(lease.function, {})
    if lease.pool is Pool.PROVISIONED:
        in_pool = [x for x in others if x.pool is Pool.PROVISIONED and x.version == lease.version]
        assert len(in_pool) < versions[lease.version]
    elif lease.pool is Pool.UNRESERVED:
        assert reserved is None
        assert before.unreserved_in_flight < before.unreserved_limit
    else:
        assert reserved is not None
        on_demand = [x for x in others if x.pool is not Pool.PROVISIONED]
        assert len(on_demand) < reserved - sum(versions.values())


@settings(max_examples=300, deadline=None)
@given(operations)
def test_never_more_in_flight_than_the_limits_allow(ops: list[tuple]) -> None:
    clock = FakeClock()
    counting = CountingService(account_limit=8, min_unreserved=2, clock=clock)
    held: list = []
    crashed: list = []  # leases whose caller died: never released, they must expire

    for op in ops:
        if op[0] == "acquire":
            reserved = counting.reserved(op[1])
            before = counting.snapshot()
            try:
                lease = counting.acquire(op[1], ttl=2, version=op[2])
            except Throttled:
                continue
            _check_grant(lease, before, held + crashed, clock, reserved)
            held.append(lease)
        elif op[0] == "release" and held:
            counting.release(held.pop(op[1] % len(held)))
        elif op[0] == "crash" and held:
            crashed.append(held.pop(op[1] % len(held)))
        elif op[0] == "advance":
            clock.advance(op[1])
        elif op[0] == "reserve":
            with contextlib.suppress(ReservationRejected):
                counting.set_reserved(op[1], op[2])
        elif op[0] == "unreserve":
            counting.clear_reserved(op[1])
        elif op[0] == "provision":
            with contextlib.suppress(ReservationRejected):
                counting.check_provisioned(op[1], op[2], op[3])
                versions = counting.snapshot().provisioned.get(op[1], {})
                counting.set_provisioned(op[1], versions | {op[2]: op[3]})

        snapshot = counting.snapshot()
        live = _live(held + crashed, clock)
        assert snapshot.total_in_flight == len(live)
        assert snapshot.unreserved_in_flight == sum(x.pool is Pool.UNRESERVED for x in live)
        provisioned = sum(x.pool is Pool.PROVISIONED for x in live)
        assert sum(sum(v.values()) for v in snapshot.provisioned_in_flight.values()) == provisioned
        # The limits themselves never break the minimum unreserved pool.
        assert snapshot.unreserved_limit >= counting.min_unreserved
        outside = sum(
            sum(versions.values())
            for function, versions in snapshot.provisioned.items()
            if counting.reserved(function) is None
        )
        assert snapshot.unreserved_limit == 8 - snapshot.reserved_total - outside
        for function, versions in snapshot.provisioned.items():
            reserved = counting.reserved(function)
            assert reserved is None or sum(versions.values()) <= reserved
