"""When an event runs again, and when it is done: Lambda's rules for asynchronous invokes.

Pure functions of the event, the attempt, the function's invoke config and the time, so every
delay and every age is tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.eventqueue.model import Attempt, AttemptKind, Condition, InvokeConfig, QueuedEvent

# Lambda waits about a minute before the first retry of a function error and two before the
# second.
FUNCTION_ERROR_DELAYS_S = (60.0, 120.0)
# Throttles and platform errors back off from one second, doubling up to five minutes.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0


@dataclass(frozen=True)
class Timing:
    """Lambda's delays; `scale` shrinks them all, for tests of a real platform only."""

    scale: float = 1.0

    def function_error_delay(self, invokes: int) -> float:
        index = min(invokes, len(FUNCTION_ERROR_DELAYS_S)) - 1
        return FUNCTION_ERROR_DELAYS_S[index] * self.scale

    def backoff(self, throttles: int) -> float:
        """The wait after the `throttles`-th consecutive refusal (counted from zero)."""
        return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** min(throttles, 16)) * self.scale


LAMBDA_TIMING = Timing()


@dataclass(frozen=True)
class Retry:
    at: float
    invokes: int
    throttles: int


@dataclass(frozen=True)
class Done:
    condition: Condition
    invokes: int


Decision = Retry | Done


def before_attempt(event: QueuedEvent, config: InvokeConfig, now: float) -> Done | None:
    """An event that must not run at all: it is too old."""
    if now > event.enqueued_at + config.event_age_s:
        return Done(Condition.EVENT_AGE_EXCEEDED, event.invokes)
    return None


def after_attempt(
    event: QueuedEvent,
    attempt: Attempt,
    config: InvokeConfig,
    now: float,
    timing: Timing = LAMBDA_TIMING,
) -> Decision:
    """What follows an attempt: done (with Lambda's condition) or a retry at some time."""
    if attempt.kind is AttemptKind.RAN:
        invokes = event.invokes + 1
        if attempt.function_error is None:
            return Done(Condition.SUCCESS, invokes)
        if invokes > config.retries:
            return Done(Condition.RETRIES_EXHAUSTED, invokes)
        retry = Retry(now + timing.function_error_delay(invokes), invokes, event.throttles)
    else:
        retry = Retry(now + timing.backoff(event.throttles), event.invokes, event.throttles + 1)

    # A retry that would start after the event's maximum age never happens.
    if retry.at > event.enqueued_at + config.event_age_s:
        return Done(Condition.EVENT_AGE_EXCEEDED, retry.invokes)
    return retry
