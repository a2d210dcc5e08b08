"""Concurrency leases with the limits Lambda applies.

Each invoke holds one lease from the moment the frontend accepts it until its sandbox answers.
A function with reserved concurrency draws from its own pool of that size; every other function
shares what is left of the account limit (the unreserved pool). Leases carry an expiry, so an
invoke whose caller crashed stops counting once its function's timeout and a grace have passed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass

from lamina.clock import Clock, SystemClock

log = logging.getLogger(__name__)

RESERVED_LIMIT_EXCEEDED = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT_EXCEEDED = "ConcurrentInvocationLimitExceeded"


class CountingError(Exception):
    """Base of the counting service's errors."""


class Throttled(CountingError):
    """No lease: the invoke would exceed a limit. `reason` is Lambda's throttle reason.

    `retry_after_s` is set when the limit frees up at a known time (the scaling budget).
    """

    def __init__(self, function: str, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{function} throttled: {reason}")
        self.function = function
        self.reason = reason
        self.retry_after_s = retry_after_s


class ReservationRejected(CountingError):
    """A reserved concurrency that the account's limits cannot give."""


@dataclass(frozen=True)
class Lease:
    lease_id: int
    function: str
    reserved_pool: bool  # which pool the lease was counted in, so release undoes exactly that
    expires_at: float


@dataclass(frozen=True)
class CountingSnapshot:
    account_limit: int
    reserved_total: int
    unreserved_limit: int
    unreserved_in_flight: int
    in_flight: dict[str, int]

    @property
    def total_in_flight(self) -> int:
        return sum(self.in_flight.values())


class CountingService:
    """The in-process counting service; every method is O(log n) or better."""

    def __init__(
        self,
        account_limit: int = 1000,
        min_unreserved: int = 100,
        clock: Clock | None = None,
    ) -> None:
        self.account_limit = account_limit
        self.min_unreserved = min_unreserved
        self._clock = clock or SystemClock()
        self._reserved: dict[str, int] = {}
        self._reserved_total = 0  # kept with `_reserved`, so acquire need not sum it
        self._in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0
        self._leases: dict[int, Lease] = {}
        self._expiry: list[tuple[float, int]] = []
        self._ids = itertools.count(1)

    # Reservations

    def reserved(self, function: str) -> int | None:
        return self._reserved.get(function)

    def reserved_total(self) -> int:
        return self._reserved_total

    def unreserved_limit(self) -> int:
        return self.account_limit - self.reserved_total()

    def set_reserved(self, function: str, value: int) -> None:
        """Reserve `value` concurrent executions for `function`, as PutFunctionConcurrency."""
        others = self.reserved_total() - self._reserved.get(function, 0)
        left = self.account_limit - others - value
        if left < self.min_unreserved:
            raise ReservationRejected(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                "UnreservedConcurrentExecution below its minimum value of "
                f"[{self.min_unreserved}]."
            )
        self._reserved_total += value - self._reserved.get(function, 0)
        self._reserved[function] = value
        log.info("reserved concurrency set function=%s value=%d", function, value)

    def clear_reserved(self, function: str) -> None:
        value = self._reserved.pop(function, None)
        if value is not None:
            self._reserved_total -= value
            log.info("reserved concurrency removed function=%s", function)

    def forget(self, function: str) -> None:
        """Drop what is known of a deleted function; its live leases still release cleanly."""
        self.clear_reserved(function)

    # Leases

    def acquire(self, function: str, ttl: float) -> Lease:
        """Grant one concurrent execution for `ttl` seconds, or raise `Throttled`."""
        self._expire_leases()

        reserved = self._reserved.get(function)
        if reserved is not None:
            if self._in_flight.get(function, 0) >= reserved:
                raise Throttled(function, RESERVED_LIMIT_EXCEEDED)
        elif self._unreserved_in_flight >= self.unreserved_limit():
            raise Throttled(function, ACCOUNT_LIMIT_EXCEEDED)

        lease = Lease(
            lease_id=next(self._ids),
            function=function,
            reserved_pool=reserved is not None,
            expires_at=self._clock.monotonic() + ttl,
        )
        self._count(lease, +1)
        self._leases[lease.lease_id] = lease
        heapq.heappush(self._expiry, (lease.expires_at, lease.lease_id))
        return lease

    def release(self, lease: Lease) -> None:
        """Return a lease; releasing one that already expired or was released does nothing."""
        if self._leases.pop(lease.lease_id, None) is not None:
            self._count(lease, -1)
        # Released leases stay in the expiry heap until they would expire; drop them in bulk
        # once they outnumber the live ones, so a busy account's heap stays its own size.
        if len(self._expiry) > 2 * len(self._leases) + 1024:
            self._expiry = [(e, i) for e, i in self._expiry if i in self._leases]
            heapq.heapify(self._expiry)

    def snapshot(self) -> CountingSnapshot:
        self._expire_leases()
        return CountingSnapshot(
            account_limit=self.account_limit,
            reserved_total=self.reserved_total(),
            unreserved_limit=self.unreserved_limit(),
            unreserved_in_flight=self._unreserved_in_flight,
            in_flight={f: n for f, n in self._in_flight.items() if n},
        )

    def _count(self, lease: Lease, delta: int) -> None:
        self._in_flight[lease.function] = self._in_flight.get(lease.function, 0) + delta
        if not self._in_flight[lease.function]:
            del self._in_flight[lease.function]
        if not lease.reserved_pool:
            self._unreserved_in_flight += delta

    def _expire_leases(self) -> None:
        now = self._clock.monotonic()
        while self._expiry and self._expiry[0][0] <= now:
            _, lease_id = heapq.heappop(self._expiry)
            lease = self._leases.pop(lease_id, None)
            if lease is not None:
                log.warning("lease expired unreleased function=%s", lease.function)
                self._count(lease, -1)
