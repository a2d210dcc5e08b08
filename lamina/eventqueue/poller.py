"""Pollers: lease due events, run each through the sync invoke path, settle the outcome.

`poll_once` is one step (lease what is due at `now`, start it); `run` repeats it for as long
as Lamina runs. Tests drive `poll_once` with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Protocol

from lamina.clock import Clock
from lamina.eventqueue import policy
from lamina.eventqueue.model import Attempt, Condition, InvokeConfig, QueuedEvent
from lamina.eventqueue.queue import LATEST, EventQueue
from lamina.eventqueue.record import invocation_record
from lamina.tenancy import FunctionKey

log = logging.getLogger(__name__)

# A lease outlives the function's timeout by this much: room for a cold start and the answer.
LEASE_MARGIN_S = 60.0
DEFAULT_MAX_IN_FLIGHT = 16
# How long an idle poller waits before it looks again for retries that came due.
IDLE_WAIT_S = 0.1


@dataclass(frozen=True)
class Target:
    """What a poller must know of the function an event is for."""

    timeout_s: float
    reserved_zero: bool  # reserved concurrency 0: every event fails without running


class Invoker(Protocol):
    def target(self, function: str) -> Target | None:
        """The function (by key, ACCOUNT:NAME) as it is now, or None when it no longer exists."""

    async def invoke(self, event: QueuedEvent) -> Attempt:
        """Run the event once through the sync invoke path."""


class Poller:
    def __init__(
        self,
        queue: EventQueue,
        invoker: Invoker,
        clock: Clock,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        lease_margin_s: float = LEASE_MARGIN_S,
        timing: policy.Timing = policy.LAMBDA_TIMING,
    ) -> None:
        self.queue = queue
        self.invoker = invoker
        self.clock = clock
        self.owner = f"poller-{secrets.token_hex(4)}"
        self.max_in_flight = max_in_flight
        self.lease_margin_s = lease_margin_s
        self.timing = timing
        self._running: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def poll_once(self, now: float | None = None) -> list[asyncio.Task[None]]:
        """Lease the events due at `now` that fit in the free slots and start each."""
        free = self.max_in_flight - len(self._running)
        if free <= 0:
            return []
        moment = self.clock.time() if now is None else now
        events = await self.queue.call(
            self.queue.store.lease, moment, free, self.owner, self._lease_seconds
        )
        tasks = []
        for event in events:
            task = asyncio.get_running_loop().create_task(
                self._settle(event), name=f"event-{event.request_id}"
            )
            self._running.add(task)
            task.add_done_callback(self._done)
            tasks.append(task)
        return tasks

    async def run(self) -> None:
        """Poll until cancelled; wakes at once when an event is accepted or a slot frees."""
        while True:
            try:
                started = await self.poll_once()
            except Exception:
                log.exception("poll failed")
                started = []
            if started and self.in_flight < self.max_in_flight:
                continue
            await self._wait()

    async def _wait(self) -> None:
        waits = [asyncio.ensure_future(self._slot_freed.wait())]
        if self.in_flight < self.max_in_flight:
            waits.append(asyncio.ensure_future(self.queue.arrived.wait()))
        try:
            await asyncio.wait(waits, timeout=IDLE_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        self._slot_freed.clear()
        self.queue.arrived.clear()

    async def drain(self) -> None:
        """Let the events being run finish (for tests and a clean stop)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*list(self._running), return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            # The lease runs out by itself and the event runs again: at least once.
            log.error("event failed inside Lamina", exc_info=task.exception())

    def _lease_seconds(self, function: str) -> float:
        target = self.invoker.target(function)
        timeout = target.timeout_s if target is not None else 0.0
        return timeout + self.lease_margin_s

    # One event

    async def _settle(self, event: QueuedEvent) -> None:
        # Settings belong to the version or alias the event was sent to, as in Lambda.
        qualifier = function_of_arn(event.invoked_arn)[1] or LATEST
        config = self.queue.config(event.function, qualifier)
        target = self.invoker.target(event.function)
        if target is None:
            log.warning(
                "event dropped: function gone function=%s request=%s",
                event.function,
                event.request_id,
            )
            await self.queue.call(self.queue.store.finish, event, None)
            return

        expired = policy.before_attempt(event, config, self.clock.time())
        if expired is not None:
            await self._done_with(event, config, expired, event.last)
            return
        if target.reserved_zero:
            done = policy.Done(Condition.ZERO_RESERVED_CONCURRENCY, 0)
            await self._done_with(event, config, done, None)
            return

        attempt = await self.invoker.invoke(event)
        decision = policy.after_attempt(event, attempt, config, self.clock.time(), self.timing)
        if isinstance(decision, policy.Retry):
            log.info(
                "event retry function=%s request=%s kind=%s in=%.1fs",
                event.function,
                event.request_id,
                attempt.kind.value,
                decision.at - self.clock.time(),
            )
            await self.queue.call(self.queue.store.reschedule, event, decision, attempt)
            return
        await self._done_with(event, config, decision, attempt)

    async def _done_with(
        self,
        event: QueuedEvent,
        config: InvokeConfig,
        done: policy.Done,
        attempt: Attempt | None,
    ) -> None:
        now = self.clock.time()
        succeeded = done.condition is Condition.SUCCESS
        destination = config.on_success if succeeded else config.on_failure
        log.info(
            "event done function=%s request=%s condition=%s invokes=%d destination=%s",
            event.function,
            event.request_id,
            done.condition.value,
            done.invokes,
            destination,
        )
        record = None
        if destination:
            payload = invocation_record(event, done.condition, done.invokes, attempt, now)
            record = self._record_event(destination, payload, now)
        if record is not None or succeeded:
            await self.queue.call(self.queue.store.finish, event, record)
        else:
            await self.queue.call(
                self.queue.store.keep_failed, event, done.condition, done.invokes, attempt, now
            )
        if record is not None:
            self.queue.arrived.set()

    def _record_event(self, destination: str, payload: bytes, now: float) -> QueuedEvent | None:
        """The invocation record as an event for the destination function, if it exists."""
        name, qualifier = function_of_arn(destination)
        key = FunctionKey.of(account_of_arn(destination), name)
        if self.invoker.target(key) is None:
            log.warning("destination function missing arn=%s", destination)
            return None
        base = destination.rsplit(":", 1)[0] if qualifier else destination
        request_id = str(uuid.uuid4())
        return QueuedEvent(
            request_id, key, f"{base}:{qualifier or LATEST}", destination, payload, "", now, now
        )


def function_of_arn(arn: str) -> tuple[str, str | None]:
    """The function name and qualifier of a Lambda function ARN."""
    parts = arn.split(":")
    return parts[6], parts[7] if len(parts) > 7 else None


def account_of_arn(arn: str) -> str:
    """The account a Lambda function ARN names."""
    return arn.split(":")[4]
