"""Assignment (the worker manager): every sandbox of every function version, idle or busy."""

from lamina.assignment.manager import (
    AssignmentService,
    InvokeRequest,
    InvokeResult,
    NoCapacity,
    NoCapacityInTime,
    PlatformFailure,
    ScaleThrottled,
    UnknownWorker,
    room_wait_s,
)

__all__ = [
    "AssignmentService",
    "InvokeRequest",
    "InvokeResult",
    "NoCapacity",
    "NoCapacityInTime",
    "PlatformFailure",
    "ScaleThrottled",
    "UnknownWorker",
    "room_wait_s",
]
