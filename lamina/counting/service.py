"""Concurrency leases with the limits Lambda applies.

Each invoke holds one lease from the moment the frontend accepts it until its sandbox answers.
A function with reserved concurrency draws from its own pool of that size; every other function
shares what is left of the account limit (the unreserved pool). Provisioned concurrency of a
version is a pool of its own for that version's invokes, taken out of the function's
reservation if it has one and out of the unreserved pool otherwise; its overflow spills into
the pool it was taken from. Leases carry an expiry, so an invoke whose caller crashed stops
counting once its function's timeout and a grace have passed.
"""

from __future__ import annotations

import enum
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
    """A reserved or provisioned concurrency that the account's limits cannot give.

    `typed` is False for the messages Lambda sends without a `Type` member.
    """

    def __init__(self, message: str, typed: bool = False) -> None:
        super().__init__(message)
        self.typed = typed


class Pool(enum.Enum):
    UNRESERVED = "unreserved"
    RESERVED = "reserved"  # the function's reservation, less its provisioned part
    PROVISIONED = "provisioned"  # a version's provisioned concurrency


@dataclass(frozen=True)
class Lease:
    lease_id: int
    function: str
    pool: Pool  # which pool the lease was counted in, so release undoes exactly that
    expires_at: float
    version: str | None = None


@dataclass(frozen=True)
class CountingSnapshot:
    account_limit: int
    reserved_total: int
    unreserved_limit: int
    unreserved_in_flight: int
    in_flight: dict[str, int]
    provisioned: dict[str, dict[str, int]]  # function -> version -> provisioned executions
    provisioned_in_flight: dict[str, dict[str, int]]  # leases held in those pools

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
        self._provisioned: dict[str, dict[str, int]] = {}
        self._outside = 0  # provisioned executions of functions without a reservation
        self._in_flight: dict[str, int] = {}
        self._unreserved_in_flight = 0
        self._provisioned_in_flight: dict[str, dict[str, int]] = {}
        self._leases: dict[int, Lease] = {}
        self._expiry: list[tuple[float, int]] = []
        self._ids = itertools.count(1)

    # Reservations

    def reserved(self, function: str) -> int | None:
        return self._reserved.get(function)

    def reserved_total(self) -> int:
        return self._reserved_total

    def unreserved_limit(self) -> int:
        """UnreservedConcurrentExecutions: the account limit less every reservation and the
        provisioned concurrency of functions without one."""
        return self.account_limit - self.reserved_total() - self._outside

    def set_reserved(self, function: str, value: int) -> None:
        """Reserve `value` concurrent executions for `function`, as PutFunctionConcurrency."""
        provisioned = self.provisioned_total(function)
        if value < provisioned:
            raise ReservationRejected(
                f" ReservedConcurrentExecutions  {value} should not be lower than function's "
                f"total provisioned concurrency [{provisioned}]."
            )
        others = self.reserved_total() - self._reserved.get(function, 0)
        # The function's provisioned concurrency moves into the reservation.
        outside = self._outside - (0 if function in self._reserved else provisioned)
        if self.account_limit - others - outside - value < self.min_unreserved:
            raise ReservationRejected(
                "Specified ReservedConcurrentExecutions for function decreases account's "
                "UnreservedConcurrentExecution below its minimum value of "
                f"[{self.min_unreserved}]."
            )
        self._reserved_total += value - self._reserved.get(function, 0)
        self._reserved[function] = value
        self._outside = self._provisioned_outside()
        log.info("reserved concurrency set function=%s value=%d", function, value)

    def clear_reserved(self, function: str) -> None:
        value = self._reserved.pop(function, None)
        if value is not None:
            self._reserved_total -= value
            self._outside = self._provisioned_outside()
            log.info("reserved concurrency removed function=%s", function)

    def forget(self, function: str) -> None:
        """Drop what is known of a deleted function; its live leases still release cleanly."""
        self.clear_reserved(function)
        self._provisioned.pop(function, None)
        self._outside = self._provisioned_outside()

    # Provisioned concurrency

    def provisioned_total(self, function: str) -> int:
        return sum(self._provisioned.get(function, {}).values())

    def check_provisioned(self, function: str, version: str, requested: int) -> None:
        """Refuse, as PutProvisionedConcurrencyConfig does, `requested` provisioned executions
        for `version` that the reservation or the unreserved pool cannot give."""
        others = self.provisioned_total(function) - self._provisioned.get(function, {}).get(
            version, 0
        )
        reserved = self._reserved.get(function)
        if reserved is not None:
            if others + requested > reserved:
                raise ReservationRejected(
                    "Requested Provisioned Concurrency should not be greater than the "
                    "reservedConcurrentExecution for function",
                    typed=True,
                )
            return

        # What the pool would hold without the configuration this one replaces.
        unreserved = self.unreserved_limit() + self._provisioned.get(function, {}).get(version, 0)
        if requested > unreserved:
            raise ReservationRejected(
                "Specified ConcurrentExecutions for function is greater than account's "
                f"unreserved concurrency [{unreserved}]."
            )
        if unreserved - requested < self.min_unreserved:
            raise ReservationRejected(
                "Specified ConcurrentExecutions for function decreases account's "
                "UnreservedConcurrentExecution below its minimum value of "
                f"[{self.min_unreserved}]."
            )

    def set_provisioned(self, function: str, versions: dict[str, int]) -> None:
        """The provisioned executions of each version of `function` (all of them: versions
        left out have none). Checked beforehand by `check_provisioned`."""
        wanted = {version: n for version, n in versions.items() if n > 0}
        if wanted:
            self._provisioned[function] = wanted
        else:
            self._provisioned.pop(function, None)
        self._outside = self._provisioned_outside()
        log.info("provisioned concurrency set function=%s versions=%s", function, wanted)

    def _provisioned_outside(self) -> int:
        """Provisioned executions of functions without a reservation; kept in `_outside`,
        since acquire reads it on every call and it changes only with the limits."""
        return sum(
            sum(versions.values())
            for function, versions in self._provisioned.items()
            if function not in self._reserved
        )

    # Leases

    def acquire(self, function: str, ttl: float, version: str | None = None) -> Lease:
        """Grant one concurrent execution of `function` (of `version`, when its provisioned
        concurrency may serve it) for `ttl` seconds, or raise `Throttled`."""
        self._expire_leases()
        lease = Lease(
            lease_id=next(self._ids),
            function=function,
            pool=self._pool_for(function, version),
            expires_at=self._clock.monotonic() + ttl,
            version=version,
        )
        self._count(lease, +1)
        self._leases[lease.lease_id] = lease
        heapq.heappush(self._expiry, (lease.expires_at, lease.lease_id))
        return lease

    def _pool_for(self, function: str, version: str | None) -> Pool:
        """The pool with room for one more execution, provisioned first, or `Throttled`."""
        versions = self._provisioned.get(function, {})
        if version is not None and version in versions:
            held = self._provisioned_in_flight.get(function, {}).get(version, 0)
            if held < versions[version]:
                return Pool.PROVISIONED

        reserved = self._reserved.get(function)
        if reserved is None:
            if self._unreserved_in_flight >= self.unreserved_limit():
                raise Throttled(function, ACCOUNT_LIMIT_EXCEEDED)
            return Pool.UNRESERVED
        # Every lease of the function counts against its reservation; the provisioned part
        # of the reservation is left to the provisioned versions.
        provisioned = sum(versions.values())
        in_provisioned = sum(self._provisioned_in_flight.get(function, {}).values())
        on_demand = self._in_flight.get(function, 0) - in_provisioned
        if on_demand >= reserved - provisioned:
            raise Throttled(function, RESERVED_LIMIT_EXCEEDED)
        return Pool.RESERVED

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
            provisioned={f: dict(versions) for f, versions in self._provisioned.items()},
            provisioned_in_flight={
                f: dict(versions) for f, versions in self._provisioned_in_flight.items()
            },
        )

    def _count(self, lease: Lease, delta: int) -> None:
        _add(self._in_flight, lease.function, delta)
        if lease.pool is Pool.UNRESERVED:
            self._unreserved_in_flight += delta
        elif lease.pool is Pool.PROVISIONED and lease.version is not None:
            versions = self._provisioned_in_flight.setdefault(lease.function, {})
            _add(versions, lease.version, delta)
            if not versions:
                del self._provisioned_in_flight[lease.function]

    def _expire_leases(self) -> None:
        now = self._clock.monotonic()
        while self._expiry and self._expiry[0][0] <= now:
            _, lease_id = heapq.heappop(self._expiry)
            lease = self._leases.pop(lease_id, None)
            if lease is not None:
                log.warning("lease expired unreleased function=%s", lease.function)
                self._count(lease, -1)


def _add(counts: dict[str, int], key: str, delta: int) -> None:
    """Add `delta` to `counts[key]`, dropping keys that reach zero."""
    counts[key] = counts.get(key, 0) + delta
    if not counts[key]:
        del counts[key]
