"""The event queue: durable asynchronous invocation, retries, event age and destinations."""

from lamina.eventqueue.model import (
    Attempt,
    AttemptKind,
    Condition,
    FailedEvent,
    InvokeConfig,
    QueuedEvent,
    QueueSnapshot,
)
from lamina.eventqueue.poller import Invoker, Poller, Target
from lamina.eventqueue.queue import EventQueue
from lamina.eventqueue.store import EventStore

__all__ = [
    "Attempt",
    "AttemptKind",
    "Condition",
    "EventQueue",
    "EventStore",
    "FailedEvent",
    "InvokeConfig",
    "Invoker",
    "Poller",
    "QueueSnapshot",
    "QueuedEvent",
    "Target",
]
