"""Full workers: an invoke waits for a hand-over or for room, up to its function's timeout."""

from __future__ import annotations

import asyncio

import pytest

from lamina.assignment import AssignmentService, NoCapacityInTime, room_wait_s
from lamina.assignment.manager import HANDOFF_FLOOR_S, SandboxRecord
from lamina.assignment.waiting import StartTracker, Waiters
from lamina.clock import FakeClock
from lamina.placement.fleet import Fleet
from lamina.registry.model import FunctionConfig
from lamina.worker.client import SandboxStart
from tests.unit.test_assignment import FakeWorker, config, registration, request, until_invoked
from tests.unit.test_scaling import until_sleeping, until_waiting


class HeldStarts(FakeWorker):
    """A worker whose cold starts each last until the test releases them, in order."""

    def __init__(self) -> None:
        super().__init__("w1")
        self.starts: list[asyncio.Event] = []

    async def create_sandbox(
        self, sandbox_id: str, config: FunctionConfig, provisioned: bool = False
    ) -> SandboxStart:
        released = asyncio.Event()
        self.starts.append(released)
        await released.wait()
        return await super().create_sandbox(sandbox_id, config, provisioned)


def full_service(fake: FakeWorker, clock: FakeClock) -> AssignmentService:
    """A service over one 1,024 MB worker; invokes never wait briefly for a hand-over, so any
    wait seen is a wait for a full worker."""
    fleet = Fleet(connect=lambda worker_id, url: fake)  # type: ignore[arg-type,return-value]
    fleet.register(registration(fake.worker_id, fake.zone))
    return AssignmentService(fleet, clock, keep_alive_s=60, handoff_wait_s=0)


async def until_starts(fake: HeldStarts, count: int) -> None:
    for _ in range(1000):
        if len(fake.starts) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never {count} starts")


async def test_an_invoke_finding_the_worker_full_gets_a_sandbox_of_its_version_handed_over() -> (
    None
):
    clock = FakeClock()
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment = full_service(fake, clock)
    filling = [
        asyncio.create_task(assignment.invoke(config(memory=512), request(i))) for i in (1, 2)
    ]
    await until_invoked(2, fake)

    third = asyncio.create_task(assignment.invoke(config(memory=512), request(3)))
    await until_waiting(assignment, 1)
    fake.gate.set()
    results = await asyncio.gather(*filling, third)

    assert [r.cold for r in results] == [True, True, False]
    assert len(fake.created) == 2
    assert assignment.snapshot().handoffs == 1
    assert assignment.snapshot().waiting == 0


async def test_an_invoke_finding_the_worker_full_evicts_another_functions_sandbox_once_idle() -> (
    None
):
    clock = FakeClock()
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment = full_service(fake, clock)
    first = asyncio.create_task(assignment.invoke(config("big", memory=1024), request(1)))
    await until_invoked(1, fake)

    other = asyncio.create_task(assignment.invoke(config("small", memory=256), request(2)))
    await until_waiting(assignment, 1)
    fake.gate.set()
    results = await asyncio.gather(first, other)
    await asyncio.sleep(0)  # the eviction's destroy call runs as a task

    assert [r.cold for r in results] == [True, True]
    assert fake.destroyed == [fake.created[0]]
    assert assignment.snapshot().per_function == {config("small").key: 1}


async def test_an_invoke_that_finds_no_room_within_its_init_limit_and_timeout_is_refused() -> None:
    clock = FakeClock()
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment = full_service(fake, clock)
    first = asyncio.create_task(assignment.invoke(config("big", memory=1024), request(1)))
    await until_invoked(1, fake)

    other = asyncio.create_task(assignment.invoke(config("small", memory=128), request(2)))
    await until_waiting(assignment, 1)
    await until_sleeping(clock)
    clock.advance(room_wait_s(config()) - 0.001)
    await asyncio.sleep(0)
    waiting_before_timeout = assignment.snapshot().waiting
    clock.advance(0.002)
    with pytest.raises(NoCapacityInTime):
        await other
    fake.gate.set()
    await first

    assert waiting_before_timeout == 1
    assert assignment.snapshot().waiting == 0
    assert len(fake.created) == 1
    assert assignment.snapshot().per_function == {config("big").key: 1}


async def test_a_released_sandbox_goes_to_the_oldest_waiter_first() -> None:
    clock = FakeClock()
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment = full_service(fake, clock)
    first = asyncio.create_task(assignment.invoke(config(memory=1024), request(1)))
    await until_invoked(1, fake)

    finished: list[int] = []
    waiters = []
    for n in (2, 3):
        waiter = asyncio.create_task(assignment.invoke(config(memory=1024), request(n)))
        waiter.add_done_callback(lambda _, n=n: finished.append(n))  # type: ignore[misc]
        waiters.append(waiter)
        await until_waiting(assignment, n - 1)
    fake.gate.set()
    await asyncio.gather(first, *waiters)

    assert finished == [2, 3]
    assert len(fake.created) == 1
    assert assignment.snapshot().handoffs == 2


async def test_the_cold_start_estimate_follows_the_oldest_start_in_progress() -> None:
    clock = FakeClock()
    fake = HeldStarts()
    assignment = full_service(fake, clock)
    function = config().key
    no_history = assignment._cold_start_estimate(function)

    invokes = [asyncio.create_task(assignment.invoke(config(), request(1)))]
    await until_starts(fake, 1)
    clock.advance(2)
    invokes.append(asyncio.create_task(assignment.invoke(config(), request(2))))
    await until_starts(fake, 2)
    clock.advance(3)
    two_starting = assignment._cold_start_estimate(function)  # the first began 5 s ago

    fake.starts[0].set()  # it took 5 s: the average is 5 s
    await invokes[0]
    clock.advance(4)
    second_longer = assignment._cold_start_estimate(function)  # the second began 7 s ago
    fake.starts[1].set()
    await invokes[1]
    none_starting = assignment._cold_start_estimate(function)

    assert no_history == HANDOFF_FLOOR_S
    assert two_starting == pytest.approx(5.0)
    assert second_longer == pytest.approx(7.0)
    assert none_starting == pytest.approx(5.0 + 0.3 * (7.0 - 5.0))  # the running average


class Start:
    def __init__(self, created_at: float) -> None:
        self.created_at = created_at
        self.initialising = True


def test_the_start_tracker_forgets_starts_that_ended_and_reports_the_oldest_left() -> None:
    tracker: StartTracker[Start] = StartTracker()
    starts = [Start(t) for t in (1.0, 2.0, 3.0)]
    for start in starts:
        tracker.began("f", start)

    oldest = [tracker.oldest("f")]
    starts[1].initialising = False  # a later one ending leaves the oldest as it was
    oldest.append(tracker.oldest("f"))
    starts[0].initialising = False
    oldest.append(tracker.oldest("f"))
    starts[2].initialising = False
    oldest.append(tracker.oldest("f"))

    assert oldest == [1.0, 1.0, 3.0, None]
    assert tracker.oldest("other") is None


def test_the_start_tracker_keeps_no_ended_starts_of_a_function_nobody_waits_for() -> None:
    tracker: StartTracker[Start] = StartTracker()
    for t in range(100):
        start = Start(float(t))
        tracker.began("f", start)
        start.initialising = False

    assert len(tracker._starts["f"]) == 1


async def test_room_wakes_the_oldest_waiters_that_fit_and_no_more() -> None:
    waiters: Waiters[SandboxRecord] = Waiters()
    big = waiters.join(("f", "1", "r"), room_mb=512)
    small = [waiters.join(("g", "1", "r"), room_mb=128) for _ in range(3)]

    woken = waiters.wake_for_room([300])

    assert woken == 2
    assert not big.done()
    assert [w.done() for w in small] == [True, True, False]
    assert waiters.want_room
