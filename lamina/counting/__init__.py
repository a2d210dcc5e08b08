"""Counting service: how many invokes are in flight, per account and per function."""

from lamina.counting.accounts import CountingPools
from lamina.counting.service import (
    CountingService,
    CountingSnapshot,
    Lease,
    Pool,
    ReservationRejected,
    Throttled,
)

__all__ = [
    "CountingPools",
    "CountingService",
    "CountingSnapshot",
    "Lease",
    "Pool",
    "ReservationRejected",
    "Throttled",
]
