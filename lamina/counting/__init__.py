"""Counting service: how many invokes are in flight, per account and per function."""

from lamina.counting.service import (
    CountingService,
    CountingSnapshot,
    Lease,
    Pool,
    ReservationRejected,
    Throttled,
)

__all__ = [
    "CountingService",
    "CountingSnapshot",
    "Lease",
    "Pool",
    "ReservationRejected",
    "Throttled",
]
