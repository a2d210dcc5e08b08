"""One counting service per account: each account has its own limit and unreserved pool.

Lambda's concurrency limit is an account's, so one account's burst never throttles another.
Pools are made on an account's first use, all with the same limit.
"""

from __future__ import annotations

from collections.abc import Callable

from lamina.counting.service import CountingService


class CountingPools:
    """The counting service of every account, by account id."""

    def __init__(self, make: Callable[[], CountingService]) -> None:
        self._make = make
        self._pools: dict[str, CountingService] = {}

    def for_account(self, account_id: str) -> CountingService:
        pool = self._pools.get(account_id)
        if pool is None:
            pool = self._pools[account_id] = self._make()
        return pool

    def accounts(self) -> dict[str, CountingService]:
        """Every account's pool made so far."""
        return dict(self._pools)
