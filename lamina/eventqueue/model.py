"""What the event queue keeps: accepted events, invoke configs, and the outcome of attempts."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_EVENT_AGE_S = 6 * 60 * 60


class Condition(enum.StrEnum):
    """Why an event left the queue, as Lambda's invocation record names it."""

    SUCCESS = "Success"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"
    ZERO_RESERVED_CONCURRENCY = "ZeroReservedConcurrency"


class AttemptKind(enum.Enum):
    RAN = "ran"  # the function ran, with or without a function error
    THROTTLED = "throttled"  # counting refused a lease: retried with back-off
    PLATFORM_ERROR = "platform-error"  # Lamina failed before or while running it: back-off too


@dataclass(frozen=True)
class Attempt:
    """What one attempt to run an event gave."""

    kind: AttemptKind
    payload: bytes = b""
    function_error: str | None = None  # "Unhandled" when the function failed
    status_code: int = 200
    executed_version: str = "$LATEST"

    @property
    def succeeded(self) -> bool:
        return self.kind is AttemptKind.RAN and self.function_error is None


@dataclass(frozen=True)
class QueuedEvent:
    """One accepted event. `invokes` counts runs of the function, `throttles` the refusals."""

    request_id: str
    function: str  # the function's key, ACCOUNT:NAME
    function_arn: str  # qualified, as the invocation record names it
    invoked_arn: str  # as the caller named it, for the runtime's context
    payload: bytes
    trace_id: str
    enqueued_at: float
    next_at: float
    invokes: int = 0
    throttles: int = 0
    last: Attempt | None = None
    lease: str | None = None  # the token of the lease it is held under, if any


@dataclass(frozen=True)
class InvokeConfig:
    """A function's FunctionEventInvokeConfig; None means the setting was not given."""

    function: str  # the function's key, ACCOUNT:NAME
    qualifier: str
    last_modified: float
    max_retries: int | None = None
    max_event_age_s: int | None = None
    on_success: str | None = None
    on_failure: str | None = None

    @property
    def retries(self) -> int:
        return DEFAULT_MAX_RETRIES if self.max_retries is None else self.max_retries

    @property
    def event_age_s(self) -> int:
        return DEFAULT_MAX_EVENT_AGE_S if self.max_event_age_s is None else self.max_event_age_s


def default_config(function: str, qualifier: str) -> InvokeConfig:
    """The settings a function without an invoke config runs with."""
    return InvokeConfig(function, qualifier, 0.0)


@dataclass(frozen=True)
class FailedEvent:
    """An event that failed with nowhere to go, kept until it is replayed."""

    event: QueuedEvent
    condition: Condition
    failed_at: float


@dataclass(frozen=True)
class FunctionCounters:
    queued: int = 0
    leased: int = 0
    failed: int = 0
    oldest_age_s: float = 0.0
    retries: int = 0  # runs after the first, over the events still queued
    throttles: int = 0  # attempts refused (throttled or failed in Lamina), same events


@dataclass(frozen=True)
class QueueSnapshot:
    per_function: dict[str, FunctionCounters] = field(default_factory=dict)
