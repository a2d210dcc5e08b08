"""The scaling budget: how fast a function may gain new sandboxes.

Lambda lets each function start at most 1,000 new execution environments every 10 seconds,
refilled continuously. Each function has a token bucket of that size; a cold start takes one
token, and a warm invoke takes none, so a burst is served from warm sandboxes first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lamina.clock import Clock, SystemClock
from lamina.counting.service import Throttled

log = logging.getLogger(__name__)

RATE_LIMIT_EXCEEDED = "FunctionInvocationRateLimitExceeded"


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class BudgetSnapshot:
    capacity: int
    per_s: float
    tokens: dict[str, float]  # functions whose bucket is not full


class ScalingBudget:
    """Token buckets per function: `capacity` new sandboxes per `period_s`, refilled evenly."""

    def __init__(
        self, capacity: int = 1000, period_s: float = 10.0, clock: Clock | None = None
    ) -> None:
        if capacity < 1 or period_s <= 0:
            raise ValueError("a scaling budget needs a capacity of 1 or more and a period")
        self.capacity = capacity
        self.per_s = capacity / period_s
        self._clock = clock or SystemClock()
        self._buckets: dict[str, _Bucket] = {}

    def take(self, function: str) -> None:
        """Spend one new sandbox of `function`, or raise `Throttled` when none is left."""
        bucket = self._refill(function)
        if bucket.tokens < 1.0:
            log.info("scaling budget spent function=%s", function)
            raise Throttled(function, RATE_LIMIT_EXCEEDED, self.wait_s(function))
        bucket.tokens -= 1.0

    def give_back(self, function: str) -> None:
        """Return a token whose sandbox was never started (placement or the worker refused)."""
        bucket = self._refill(function)
        bucket.tokens = min(float(self.capacity), bucket.tokens + 1.0)

    def wait_s(self, function: str) -> float:
        """Seconds until `function` has a whole token again."""
        bucket = self._refill(function)
        return max(0.0, (1.0 - bucket.tokens) / self.per_s)

    def forget(self, function: str) -> None:
        self._buckets.pop(function, None)

    def snapshot(self) -> BudgetSnapshot:
        tokens = {}
        for function in list(self._buckets):
            bucket = self._refill(function)
            if bucket.tokens < self.capacity:
                tokens[function] = round(bucket.tokens, 3)
            else:
                # A full bucket is the same as none: drop it so idle functions cost nothing.
                del self._buckets[function]
        return BudgetSnapshot(self.capacity, self.per_s, tokens)

    def _refill(self, function: str) -> _Bucket:
        now = self._clock.monotonic()
        bucket = self._buckets.get(function)
        if bucket is None:
            bucket = self._buckets[function] = _Bucket(float(self.capacity), now)
            return bucket
        bucket.tokens = min(
            float(self.capacity), bucket.tokens + (now - bucket.updated) * self.per_s
        )
        bucket.updated = now
        return bucket
