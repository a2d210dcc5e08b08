"""Hands each invoke a sandbox: a warm idle one of the same version, or a new one.

The table keys sandboxes by function key (account and name), version and revision, so code
or configuration never leaks from one revision, or one account, into another. Idle sandboxes
are kept newest last: a claim takes the most recently used (warmest) one. A keep-alive policy
decides, as each invoke ends, how long its sandbox stays idle or whether it is unloaded and
loaded again shortly before the next expected invoke. An invoke that finds no idle sandbox
while others of its version are busy waits briefly for one of them before it starts a new
one, so a burst of short invokes creates about as many sandboxes as it has invokes running at
once. New sandboxes spend the function's scaling budget. An invoke that placement can fit
nowhere, every worker being full, waits for a sandbox of its version to be handed over or for
room on a worker, up to its init limit and timeout, instead of failing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from lamina.assignment.keepalive import FixedKeepAlive, KeepAlivePolicy, Window
from lamina.assignment.waiting import StartTracker, Waiters
from lamina.clock import Clock, SystemClock
from lamina.counting import Throttled
from lamina.counting.budget import ScalingBudget
from lamina.placement import Decision, PlacementRequest, place
from lamina.placement.fleet import Fleet, Occupancy, Registration
from lamina.registry.model import FunctionConfig
from lamina.sandbox import logs as loglines
from lamina.sandbox.states import INIT_TIMEOUT_S, Lifecycle, SandboxState
from lamina.worker import protocol
from lamina.worker.client import (
    SandboxGone,
    SandboxStart,
    WorkerFailed,
    WorkerUnavailable,
    WorkerUnreachable,
)

log = logging.getLogger(__name__)

# How often an invoke may find its claimed sandbox already gone before it gives up.
MAX_CLAIM_ATTEMPTS = 3
# How long an invoke waits for a busy sandbox of its version to come free before it starts a
# new one: the function's cold-start time now, so waiting costs about what starting would,
# within these bounds.
HANDOFF_WAIT_S = 10.0
HANDOFF_FLOOR_S = 0.05
# Weight of the newest sample in the running estimates of cold-start and invoke times.
NEWEST_WEIGHT = 0.3
# How many placement decisions are kept for `lamina placement explain`.
DECISIONS_KEPT = 100


class AssignmentError(Exception):
    """Base of the assignment part's errors."""


class UnknownWorker(AssignmentError):
    """No worker of that id is a member of the fleet."""


class NoCapacity(AssignmentError):
    """Placement found no worker for a new sandbox."""


class NoCapacityInTime(NoCapacity):
    """Every worker stayed full of busy sandboxes until the invoke's deadline."""


class PlatformFailure(AssignmentError):
    """A worker failed while it held the invoke."""


class ScaleThrottled(AssignmentError):
    """A new sandbox was needed but the function's scaling budget is spent."""

    def __init__(self, function: str, reason: str, retry_after_s: float | None) -> None:
        super().__init__(f"{function} scaling budget spent")
        self.reason = reason
        self.retry_after_s = retry_after_s


VersionKey = tuple[str, str, str]  # function key (ACCOUNT:NAME), version, revision id


def version_key(config: FunctionConfig) -> VersionKey:
    return (config.key, config.version, config.revision_id)


def room_wait_s(config: FunctionConfig) -> float:
    """How long an invoke may wait for room on full workers.

    As long as a caller of Lambda may wait for a cold start's init and the function's run,
    which is what an invoke placed at once might have taken too.
    """
    return INIT_TIMEOUT_S + config.timeout


@dataclass
class SandboxRecord:
    sandbox_id: str
    worker_id: str
    key: VersionKey
    memory_mb: int
    lifecycle: Lifecycle
    idle_since: float = 0.0
    expires_at: float = 0.0  # when keep-alive reclaims it while idle
    created_at: float = 0.0

    @property
    def initialising(self) -> bool:
        return self.lifecycle.state is SandboxState.INITIALISING


@dataclass(frozen=True)
class InvokeRequest:
    request_id: str
    payload: bytes
    invoked_arn: str
    trace_id: str = ""
    client_context: str | None = None
    want_log_tail: bool = False


@dataclass(frozen=True)
class InvokeResult:
    payload: bytes
    error_type: str | None
    log_tail: str | None
    cold: bool


@dataclass(frozen=True)
class PlacementRecord:
    """One placement decision, kept so an operator can see why a sandbox went where it did."""

    at: float
    function: str
    memory_mb: int
    decision: Decision


@dataclass(frozen=True)
class AssignmentSnapshot:
    idle: int
    busy: int
    initialising: int
    per_function: dict[str, int] = field(default_factory=dict)
    created: int = 0  # sandboxes started since the service began
    peak_busy: int = 0  # the most sandboxes busy at once
    handoffs: int = 0  # invokes served by a sandbox another invoke just released
    waiting: int = 0  # invokes waiting for a hand-over now
    prewarms_scheduled: int = 0
    keep_alive: dict[str, Window] = field(default_factory=dict)


class AssignmentService:
    def __init__(
        self,
        fleet: Fleet,
        clock: Clock | None = None,
        keep_alive_s: float = 600.0,
        policy: KeepAlivePolicy | None = None,
        budget: ScalingBudget | None = None,
        handoff_wait_s: float = HANDOFF_WAIT_S,
    ) -> None:
        self.fleet = fleet
        self.policy = policy or FixedKeepAlive(keep_alive_s)
        self.budget = budget
        self.handoff_wait_s = handoff_wait_s
        self._clock = clock or SystemClock()
        self._records: dict[str, SandboxRecord] = {}
        self._idle: dict[VersionKey, deque[SandboxRecord]] = {}
        self._retired: set[VersionKey] = set()
        # Provisioned concurrency: how many sandboxes of a version keep-alive must leave alone.
        self._provisioned: dict[VersionKey, int] = {}
        # Told when a provisioned version has fewer sandboxes than asked, so they are replaced.
        self.on_shortfall: Callable[[VersionKey], None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # Invokes waiting for a busy sandbox of their version to come free, or for room.
        self._waiting: Waiters[SandboxRecord] = Waiters()
        self._room_check_due = False
        # Sandboxes per version key in any state, so counts need no scan of every record.
        self._per_key: dict[VersionKey, int] = {}
        self._starts: StartTracker[SandboxRecord] = StartTracker()
        # Versions the keep-alive policy unloaded, to load again at the given time.
        self._prewarm_due: dict[VersionKey, tuple[float, FunctionConfig]] = {}
        self._configs: dict[VersionKey, FunctionConfig] = {}
        self._busy = 0
        # Running estimates per function, read by the choice between waiting and starting.
        self._cold_start_s: dict[str, float] = {}
        self._duration_s: dict[str, float] = {}
        self._counters = {"created": 0, "peak_busy": 0, "handoffs": 0}
        self.decisions: deque[PlacementRecord] = deque(maxlen=DECISIONS_KEPT)

    # The invoke path

    async def invoke(self, config: FunctionConfig, request: InvokeRequest) -> InvokeResult:
        """Run one invoke to its end in some sandbox of `config`'s version.

        Whenever the event provably never reached a sandbox (the sandbox was gone, or its
        worker could not be reached), the invoke moves on to another sandbox. After a warm one
        was gone, it takes a new one: the others idle beside it may be ending as well (a
        runtime that exits after each event leaves only such sandboxes).
        """
        key = version_key(config)
        self._configs[key] = config
        self._prewarm_due.pop(key, None)  # it came before the policy expected it
        self.policy.started(config.key, self._clock.monotonic())
        deadline = self._clock.monotonic() + room_wait_s(config)
        warm_gone = False
        for _ in range(MAX_CLAIM_ATTEMPTS):
            attempt_began = self._clock.monotonic()
            record = None
            if not warm_gone:
                record = self._claim_idle(key) or await self._await_handoff(config)
            cold = record is None
            try:
                if record is None:
                    record, failure, cold = await self._start_or_wait(config, request, deadline)
                    if failure is not None:
                        return failure
                return await self._run(record, request, cold)
            except SandboxGone as exc:
                sandbox_id = exc.args[0]
                log.debug("sandbox vanished before the event id=%s", sandbox_id)
                warm_gone = warm_gone or not cold
                gone = self._records.get(sandbox_id)
                if gone is not None:
                    self._drop(gone)
            except WorkerUnreachable as exc:
                self.unreachable(exc, attempt_began)
        raise PlatformFailure(f"no usable sandbox after {MAX_CLAIM_ATTEMPTS} attempts")

    async def prewarm(
        self, config: FunctionConfig, provisioned: bool = False
    ) -> InvokeResult | None:
        """Start one sandbox of `config` and leave it idle; the init failure, if its init
        failed. `provisioned`: one that provisioned concurrency keeps, which its function is
        told (AWS_LAMBDA_INITIALIZATION_TYPE).

        Raises NoCapacity or PlatformFailure when no sandbox could be started at all.
        """
        probe = InvokeRequest(request_id="prewarm", payload=b"", invoked_arn="")
        began = self._clock.monotonic()
        try:
            record, failure = await self._create(config, probe, provisioned)
        except WorkerUnreachable as exc:
            self.unreachable(exc, began)
            raise PlatformFailure(str(exc)) from exc
        if failure is not None:
            return failure
        # A loaded sandbox stays for the policy's keep-alive; it is not unloaded again at once.
        keep_alive_s = self.policy.window(config.key).keep_alive_s
        self._release(record, alive=True, window=Window(0.0, keep_alive_s))
        return None

    def _claim_idle(self, key: VersionKey) -> SandboxRecord | None:
        idle = self._idle.get(key)
        while idle:
            record = idle.pop()
            if record.lifecycle.state is SandboxState.IDLE:
                record.lifecycle.to(SandboxState.BUSY)
                self._busy_delta(+1)
                return record
        return None

    async def _await_handoff(self, config: FunctionConfig) -> SandboxRecord | None:
        """A sandbox of the version handed over within a cold start's time, or None.

        Only as many invokes wait as there are busy or initialising sandboxes to hand over,
        so a burst larger than that starts new ones at once for the rest. The wait is
        re-judged as it goes: while cold starts in progress take longer, starting another
        would too, so waiting stays the better bet.
        """
        key = version_key(config)
        # Busy or initialising: a sandbox still starting for another invoke frees up as soon
        # as that invoke ends.
        candidates = self._per_key.get(key, 0) - len(self._idle.get(key, ()))
        if self.handoff_wait_s <= 0 or candidates <= self._waiting.of(key):
            return None

        handed = self._waiting.join(key)
        began = self._clock.monotonic()
        try:
            while not handed.done():
                # The sandbox waited for finishes its start, if any, and then its invoke.
                cold = self._cold_start_estimate(config.key)
                limit = min(self.handoff_wait_s, cold + self._duration_s.get(config.key, cold))
                remaining = began + limit - self._clock.monotonic()
                if remaining <= 0:
                    handed.cancel()  # so a sandbox released from now on goes elsewhere
                    return None
                await _first_of(handed, self._clock.sleep(remaining))
            return handed.result()
        finally:
            self._waiting.leave(key, handed)

    def _cold_start_estimate(self, function: str) -> float:
        """Seconds a cold start of `function` takes now: the recent average, or longer while
        one in progress has already taken longer.

        Read by every waiting invoke each time it re-judges its wait, so it looks only at the
        oldest start in progress, kept up to date as starts begin.
        """
        oldest = self._starts.oldest(function)
        starting = 0.0 if oldest is None else self._clock.monotonic() - oldest
        recent = self._cold_start_s.get(function, 0.0)
        return max(HANDOFF_FLOOR_S, recent, starting)

    async def _start_or_wait(
        self, config: FunctionConfig, request: InvokeRequest, deadline: float
    ) -> tuple[SandboxRecord, InvokeResult | None, bool]:
        """A new sandbox or, while every worker is full, one freed for this invoke.

        Full workers free up as their invokes end: a sandbox of the version may be handed
        over, or room made for a new one (a sandbox gone, or idle and so evictable). Returns
        the sandbox, the init failure if its start failed, and whether it was started for this
        invoke. Raises NoCapacity at once when no worker could ever hold the sandbox, and
        NoCapacityInTime when nothing freed up before `deadline`.
        """
        key = version_key(config)
        while True:
            try:
                record, failure = await self._create_budgeted(config, request)
                return record, failure, True
            except NoCapacity:
                if not self._could_ever_hold(config.memory_size):
                    raise
            freed = await self._await_room(config, deadline) or self._claim_idle(key)
            if freed is not None:
                return freed, None, False

    async def _await_room(self, config: FunctionConfig, deadline: float) -> SandboxRecord | None:
        """A sandbox of the version handed over, or None once room may have freed up.

        Raises NoCapacityInTime when neither came before `deadline`.
        """
        key = version_key(config)
        waiter = self._waiting.join(key, room_mb=config.memory_size)
        try:
            remaining = deadline - self._clock.monotonic()
            if remaining > 0:
                await _first_of(waiter, self._clock.sleep(remaining))
            if not waiter.done():
                waiter.cancel()  # so a sandbox released from now on goes elsewhere
                raise NoCapacityInTime(
                    f"every worker stayed full of busy sandboxes for {room_wait_s(config):g} s"
                )
            return waiter.result()
        finally:
            self._waiting.leave(key, waiter)

    def _could_ever_hold(self, memory_mb: int) -> bool:
        """Whether some worker could hold a sandbox of this size once its invokes end."""
        return any(
            member.healthy and not member.draining and member.memory_capacity_mb >= memory_mb
            for member in self.fleet.members.values()
        )

    def _note_room(self) -> None:
        """Memory may have freed up: judge once, after the current step, who may retry."""
        if self._room_check_due or not self._waiting.want_room:
            return
        self._room_check_due = True
        asyncio.get_running_loop().call_soon(self._wake_for_room)

    def _wake_for_room(self) -> None:
        self._room_check_due = False
        views = self.fleet.views(self.occupancy())
        available = [v.memory_available_mb for v in views if v.healthy and not v.draining]
        woken = self._waiting.wake_for_room(available)
        log.debug("room on workers: %d waiting invokes try placement again", woken)

    async def _create_budgeted(
        self, config: FunctionConfig, request: InvokeRequest
    ) -> tuple[SandboxRecord, InvokeResult | None]:
        """A cold start that spends one token of the function's scaling budget."""
        if self.budget is not None:
            try:
                self.budget.take(config.key)
            except Throttled as exc:
                raise ScaleThrottled(config.key, exc.reason, exc.retry_after_s) from exc
        try:
            record, failure = await self._create(config, request)
        except (NoCapacity, WorkerUnreachable):
            # No sandbox was started, so no budget was used.
            if self.budget is not None:
                self.budget.give_back(config.key)
            raise
        return record, failure

    async def _create(
        self, config: FunctionConfig, request: InvokeRequest, provisioned: bool = False
    ) -> tuple[SandboxRecord, InvokeResult | None]:
        views = self.fleet.views(self.occupancy())
        decision = place(PlacementRequest(config.key, config.memory_size), views)
        self.decisions.append(
            PlacementRecord(self._clock.time(), config.key, config.memory_size, decision)
        )
        if decision.worker_id is None:
            raise NoCapacity(decision.explain())
        log.debug("placement function=%s %s", config.key, decision.explain())
        chosen = next(v for v in views if v.worker_id == decision.worker_id)
        self._evict_idle(decision.worker_id, config.memory_size - chosen.memory_free_mb)

        sandbox_id = secrets.token_hex(8)
        record = SandboxRecord(
            sandbox_id, decision.worker_id, version_key(config), config.memory_size,
            Lifecycle(sandbox_id),
        )  # fmt: skip
        self._records[sandbox_id] = record
        self._per_key[record.key] = self._per_key.get(record.key, 0) + 1
        self._counters["created"] += 1
        client = self.fleet.client(decision.worker_id)
        began = record.created_at = self._clock.monotonic()
        self._starts.began(config.key, record)
        try:
            start = await self.fleet.unless_lost(
                decision.worker_id, client.create_sandbox(sandbox_id, config, provisioned)
            )
        except WorkerUnavailable as exc:
            # Init ran at most: the event itself never reached a sandbox, so it may go on.
            self._drop(record)
            raise WorkerUnreachable(exc.worker_id, str(exc)) from exc

        if not start.ok:
            self._drop(record)
            return record, _init_failure(config, request, start)
        if record.lifecycle.dead:
            # The worker was given up while the sandbox started; the event has not been sent.
            self._destroy(record)
            raise WorkerUnreachable(record.worker_id, "given up while the sandbox started")
        _average_in(self._cold_start_s, config.key, self._clock.monotonic() - began)
        record.lifecycle.to(SandboxState.IDLE)
        record.lifecycle.to(SandboxState.BUSY)
        self._busy_delta(+1)
        return record, None

    async def _run(
        self, record: SandboxRecord, request: InvokeRequest, cold: bool
    ) -> InvokeResult:
        headers = {
            protocol.REQUEST_ID: request.request_id,
            protocol.INVOKED_ARN: request.invoked_arn,
        }
        if request.trace_id:
            headers[protocol.TRACE_ID] = request.trace_id
        if request.client_context:
            headers[protocol.CLIENT_CONTEXT] = request.client_context
        if request.want_log_tail:
            headers[protocol.WANT_LOG_TAIL] = "1"

        client = self.fleet.client(record.worker_id)
        began = self._clock.monotonic()
        try:
            reply = await self.fleet.unless_lost(
                record.worker_id, client.invoke(record.sandbox_id, request.payload, headers)
            )
        except WorkerUnreachable:
            self._drop(record)
            raise
        except WorkerFailed as exc:
            # The worker lives and failed this call alone: its other sandboxes stay; this one,
            # in a state nobody knows, goes. The event may have run, so it is not retried.
            log.warning("invoke failed on its worker sandbox=%s: %s", record.sandbox_id, exc)
            self._destroy(record)
            raise PlatformFailure(str(exc)) from exc
        except WorkerUnavailable as exc:
            # The event may have run: a sync invoke is not retried, as in Lambda.
            self.worker_lost(record.worker_id, str(exc))
            raise PlatformFailure(str(exc)) from exc

        now = self._clock.monotonic()
        _average_in(self._duration_s, record.key[0], now - began)
        window = self.policy.finished(record.key[0], now)
        self._release(record, reply.sandbox_alive, window)
        return InvokeResult(reply.payload, reply.error_type, reply.log_tail, cold)

    def _release(self, record: SandboxRecord, alive: bool, window: Window) -> None:
        member = self.fleet.members.get(record.worker_id)
        draining = member is None or member.draining
        # A dead record was forgotten while it ran (its worker was given up): not reused.
        if not alive or draining or record.lifecycle.dead or record.key in self._retired:
            self._destroy(record)
            return
        if self._hand_over(record):
            return

        self._busy_delta(-1)
        record.lifecycle.to(SandboxState.IDLE)
        now = self._clock.monotonic()
        record.idle_since = now
        record.expires_at = now + window.keep_alive_s
        self._idle.setdefault(record.key, deque()).append(record)
        if window.prewarm_s > 0:
            self._unload_until(record, now + window.prewarm_s, window.keep_alive_s)
        self._note_room()  # an idle sandbox may be evicted for an invoke of another function

    def _hand_over(self, record: SandboxRecord) -> bool:
        """Give a released sandbox straight to an invoke waiting for one of its version."""
        if not self._waiting.hand_over(record):
            return False
        self._counters["handoffs"] += 1
        return True

    def _unload_until(self, record: SandboxRecord, due: float, keep_alive_s: float) -> None:
        """The policy expects no invoke before `due`: unload now, load again then."""
        if self._spare(record.key) <= 0:
            record.expires_at = due + keep_alive_s  # provisioned: kept loaded regardless
            return
        config = self._configs.get(record.key)
        self._idle[record.key].remove(record)
        self._destroy(record)
        if config is not None:
            self._prewarm_due[record.key] = (due, config)

    def _busy_delta(self, delta: int) -> None:
        self._busy += delta
        self._counters["peak_busy"] = max(self._counters["peak_busy"], self._busy)

    # Reclaiming

    def retire(
        self, function: str, keep: VersionKey | None = None, version: str | None = None
    ) -> None:
        """Stop reusing sandboxes of `function` (all, or all but `keep`): it changed or went.

        With `version`, only the sandboxes of that version are retired.
        """
        for key in list(self._idle) + [r.key for r in self._records.values()]:
            if key[0] == function and key != keep and version in (None, key[1]):
                self._retired.add(key)
        for key in [k for k in self._idle if k in self._retired]:
            for record in self._idle.pop(key):
                self._destroy(record)

        if keep is None and version is None:
            self._cold_start_s.pop(function, None)
            self._duration_s.pop(function, None)
        for key in [k for k in self._configs if k in self._retired]:
            del self._configs[key]
            self._prewarm_due.pop(key, None)

        # A retired key matters only while sandboxes of it are still busy.
        live = {record.key for record in self._records.values()}
        self._retired &= live

    # Provisioned concurrency

    def provision(self, function: str, targets: dict[VersionKey, int]) -> None:
        """Keep `targets[key]` sandboxes of each version key of `function` from the reaper."""
        for key in [k for k in self._provisioned if k[0] == function]:
            del self._provisioned[key]
        self._provisioned.update({k: n for k, n in targets.items() if n > 0})

    def has_sandbox(self, sandbox_id: str) -> bool:
        """Whether the sandbox exists (starting, idle or busy) on any worker."""
        return sandbox_id in self._records

    def sandboxes_of(self, key: VersionKey) -> int:
        """Sandboxes of a version key in any state, initialising ones included."""
        return self._per_key.get(key, 0)

    def ready_sandboxes_of(self, key: VersionKey) -> int:
        """Sandboxes of a version key that have initialised (idle or busy)."""
        ready = (SandboxState.IDLE, SandboxState.BUSY)
        return sum(
            1
            for record in self._records.values()
            if record.key == key and record.lifecycle.state in ready
        )

    def worker_lost(self, worker_id: str, reason: str) -> None:
        """Forget every sandbox of a worker that failed, and keep placement away from it."""
        self.fleet.mark_unhealthy(worker_id, reason)
        forgotten = self._forget_sandboxes(worker_id)
        log.warning("worker lost id=%s sandboxes forgotten=%d", worker_id, forgotten)

    def unreachable(self, exc: WorkerUnreachable, call_began: float) -> None:
        """Judge a worker that a call begun at `call_began` could not reach.

        Only a worker that has not renewed its lease since the call began is given up. One that
        renewed meanwhile is alive: the connection failed on a busy loop at either end (a burst
        stalls both), and giving it up would fail every invoke it holds.
        """
        if self.fleet.renewed_since(exc.worker_id, call_began):
            log.warning("worker kept id=%s: renewed during a failed call: %s", exc.worker_id, exc)
            return
        self.worker_lost(exc.worker_id, str(exc))

    def admit(self, registration: Registration) -> tuple[bool, list[str]]:
        """Admit a worker to the fleet or renew its lease.

        Returns whether it is new, and which of the idle sandboxes it reported the table does
        not know (forgotten when the worker was given up), for the worker to destroy. A new
        member has no sandboxes here, even when a former process of the same id had some.
        """
        fresh = self.fleet.register(registration)
        if fresh:
            self._forget_sandboxes(registration.worker_id)
        self._note_room()  # a new or recovered worker has room
        orphans = [i for i in registration.idle_sandboxes if i not in self._records]
        return fresh, orphans

    def _forget_sandboxes(self, worker_id: str) -> int:
        lost = [r for r in self._records.values() if r.worker_id == worker_id]
        for record in lost:
            self._drop(record)
        for key, idle in list(self._idle.items()):
            self._idle[key] = deque(r for r in idle if r.worker_id != worker_id)
        return len(lost)

    def drain(self, worker_id: str) -> None:
        """Place nothing more on a worker and reclaim its idle sandboxes; busy ones finish."""
        member = self.fleet.members.get(worker_id)
        if member is None:
            raise UnknownWorker(worker_id)
        member.draining = True
        for idle in self._idle.values():
            for record in [r for r in idle if r.worker_id == worker_id]:
                idle.remove(record)
                self._destroy(record)
        log.info("worker draining id=%s sandboxes left=%d", worker_id, self._count_on(worker_id))

    def _count_on(self, worker_id: str) -> int:
        return sum(1 for r in self._records.values() if r.worker_id == worker_id)

    def expire_members(self) -> list[str]:
        """Forget workers whose membership lease ran out, and everything they held."""
        gone = self.fleet.expired()
        for worker_id in gone:
            self.worker_lost(worker_id, "membership lease expired")
        return gone

    async def run_membership(self, interval_s: float) -> None:
        while True:
            due = self._clock.monotonic() + interval_s
            await asyncio.sleep(interval_s)
            # Waking late means this loop was too busy to read renewals for that long.
            late = self._clock.monotonic() - due
            if late > 0:
                self.fleet.excuse(late)
            self.expire_members()

    def _evict_idle(self, worker_id: str, needed_mb: int) -> None:
        """Make room on a full worker by destroying its least valuable idle sandboxes.

        The least valuable is the one keep-alive would reclaim soonest; sandboxes that
        provisioned concurrency keeps are never evicted.
        """
        if needed_mb <= 0:
            return
        idle = sorted(
            (r for q in self._idle.values() for r in q if r.worker_id == worker_id),
            key=lambda r: (r.expires_at, r.idle_since),
        )
        spare = {key: self._spare(key) for key in {r.key for r in idle}}
        freed = 0
        for record in idle:
            if freed >= needed_mb:
                break
            if spare[record.key] <= 0:
                continue
            spare[record.key] -= 1
            self._idle[record.key].remove(record)
            self._destroy(record)
            freed += record.memory_mb
        log.info(
            "evicted idle sandboxes worker=%s freed=%dMB for %dMB", worker_id, freed, needed_mb
        )

    def _spare(self, key: VersionKey) -> int:
        """Sandboxes of a version beyond what provisioned concurrency keeps."""
        return self.sandboxes_of(key) - self._provisioned.get(key, 0)

    def reap(self) -> int:
        """Destroy idle sandboxes whose keep-alive ran out; load versions due for a pre-warm.

        Returns how many sandboxes were destroyed.
        """
        now = self._clock.monotonic()
        reaped = 0
        for key in list(self._idle):
            idle = self._idle[key]
            spare = self._spare(key)
            for record in sorted(idle, key=lambda r: r.expires_at):
                if record.expires_at > now or spare <= 0:
                    break
                idle.remove(record)
                self._destroy(record)
                reaped += 1
                spare -= 1
            if not idle:
                del self._idle[key]
        if reaped:
            log.info("keep-alive reclaimed %d idle sandboxes", reaped)
        self._start_due_prewarms(now)
        return reaped

    def _start_due_prewarms(self, now: float) -> None:
        for key, (due, config) in list(self._prewarm_due.items()):
            if due > now:
                continue
            del self._prewarm_due[key]
            if self._idle.get(key):
                continue
            task = asyncio.get_running_loop().create_task(self._policy_prewarm(config))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _policy_prewarm(self, config: FunctionConfig) -> None:
        try:
            await self.prewarm(config)
        except AssignmentError as exc:
            log.info("keep-alive pre-warm skipped function=%s: %s", config.key, exc)

    async def run_reaper(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.reap()

    def _destroy(self, record: SandboxRecord) -> None:
        self._drop(record)
        task = asyncio.get_running_loop().create_task(self._destroy_on_worker(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _destroy_on_worker(self, record: SandboxRecord) -> None:
        member = self.fleet.members.get(record.worker_id)
        if member is None:
            return
        with contextlib.suppress(WorkerUnavailable):
            await member.client.destroy(record.sandbox_id)

    def _drop(self, record: SandboxRecord) -> None:
        if record.lifecycle.state is SandboxState.BUSY:
            self._busy_delta(-1)
        if not record.lifecycle.dead:
            record.lifecycle.to(SandboxState.DEAD)
        if self._records.pop(record.sandbox_id, None) is not None:
            self._forget_count(record.key)
            self._note_room()

        wanted = self._provisioned.get(record.key, 0)
        if self.on_shortfall is not None and self.sandboxes_of(record.key) < wanted:
            self.on_shortfall(record.key)

    def _forget_count(self, key: VersionKey) -> None:
        left = self._per_key[key] - 1
        if left:
            self._per_key[key] = left
        else:
            del self._per_key[key]

    # Reports

    def occupancy(self) -> dict[str, Occupancy]:
        memory: dict[str, int] = {}
        idle: dict[str, int] = {}
        count: dict[str, int] = {}
        per_function: dict[str, dict[str, int]] = {}
        for record in self._records.values():
            worker = record.worker_id
            memory[worker] = memory.get(worker, 0) + record.memory_mb
            if record.lifecycle.state is SandboxState.IDLE:
                idle[worker] = idle.get(worker, 0) + record.memory_mb
            count[worker] = count.get(worker, 0) + 1
            functions = per_function.setdefault(worker, {})
            functions[record.key[0]] = functions.get(record.key[0], 0) + 1
        return {w: Occupancy(memory[w], count[w], per_function[w], idle.get(w, 0)) for w in memory}

    def busy_on(self, worker_id: str) -> int:
        return sum(
            1
            for r in self._records.values()
            if r.worker_id == worker_id and r.lifecycle.state is SandboxState.BUSY
        )

    def snapshot(self) -> AssignmentSnapshot:
        states = {state: 0 for state in SandboxState}
        per_function: dict[str, int] = {}
        for record in self._records.values():
            states[record.lifecycle.state] += 1
            per_function[record.key[0]] = per_function.get(record.key[0], 0) + 1
        return AssignmentSnapshot(
            idle=states[SandboxState.IDLE],
            busy=states[SandboxState.BUSY],
            initialising=states[SandboxState.INITIALISING],
            per_function=per_function,
            created=self._counters["created"],
            peak_busy=self._counters["peak_busy"],
            handoffs=self._counters["handoffs"],
            waiting=self._waiting.total(),
            prewarms_scheduled=len(self._prewarm_due),
            keep_alive=self.policy.snapshot(),
        )


async def _first_of(future: asyncio.Future[Any], timer: Coroutine[Any, Any, None]) -> None:
    """Wait until `future` is done or `timer` has run out, whichever comes first."""
    sleeping = asyncio.ensure_future(timer)
    try:
        await asyncio.wait({future, sleeping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeping.cancel()


def _average_in(averages: dict[str, float], function: str, sample: float) -> None:
    before = averages.get(function, sample)
    averages[function] = before + NEWEST_WEIGHT * (sample - before)


def _init_failure(
    config: FunctionConfig, request: InvokeRequest, start: SandboxStart
) -> InvokeResult:
    """The invoke's answer when its sandbox never finished init, as Lambda gives it."""
    error_type = start.error_type or "Runtime.Unknown"
    payload = start.document
    if payload is None:
        message = f"RequestId: {request.request_id} Error: {start.reason}"
        payload = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    text = (
        start.log
        + (
            loglines.start(request.request_id, config.version)
            + loglines.end(request.request_id)
            + loglines.report(request.request_id, 0.0, config.memory_size, 0, None, "error")
        ).encode()
    )
    tail = loglines.tail(text) if request.want_log_tail else None
    return InvokeResult(payload, error_type, tail, cold=True)
