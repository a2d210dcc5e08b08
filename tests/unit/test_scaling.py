"""Assignment under load: hand-over to waiting invokes, the scaling budget, keep-alive policies."""

from __future__ import annotations

import asyncio

import pytest

from lamina.assignment import AssignmentService, InvokeResult, ScaleThrottled
from lamina.assignment.keepalive import HybridHistogramPolicy, Window
from lamina.assignment.manager import HANDOFF_FLOOR_S
from lamina.clock import FakeClock
from lamina.counting.budget import RATE_LIMIT_EXCEEDED, ScalingBudget
from lamina.placement.fleet import Fleet
from lamina.registry.model import FunctionConfig
from lamina.worker.client import SandboxStart
from tests.unit.test_assignment import (
    FakeWorker,
    config,
    registration,
    request,
    until_invoked,
)


class FixedWindow:
    """A policy that answers one window for everything, to drive the platform's reaction."""

    name = "fixed-window"

    def __init__(self, window: Window) -> None:
        self.fixed = window

    def started(self, function: str, now: float) -> None:
        pass

    def finished(self, function: str, now: float) -> Window:
        return self.fixed

    def window(self, function: str) -> Window:
        return self.fixed

    def snapshot(self) -> dict[str, Window]:
        return {}


class SlowStart(FakeWorker):
    """A worker whose cold starts take ten seconds on the test's clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__("w1")
        self.clock = clock

    async def create_sandbox(
        self, sandbox_id: str, config: FunctionConfig, provisioned: bool = False
    ) -> SandboxStart:
        self.clock.advance(10)
        return await super().create_sandbox(sandbox_id, config)


async def service(fake: FakeWorker, clock: FakeClock, **options: object) -> AssignmentService:
    fleet = Fleet(connect=lambda worker_id, url: fake)  # type: ignore[arg-type,return-value]
    fleet.register(registration(fake.worker_id, fake.zone))
    return AssignmentService(fleet, clock, **options)  # type: ignore[arg-type]


async def until_waiting(assignment: AssignmentService, count: int) -> None:
    for _ in range(1000):
        if assignment.snapshot().waiting >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never {count} invokes waiting")


async def until_sleeping(clock: FakeClock) -> None:
    for _ in range(1000):
        if clock.sleepers:
            return
        await asyncio.sleep(0)
    raise AssertionError("nothing sleeps on the clock")


async def one_running(
    fake: FakeWorker, clock: FakeClock
) -> tuple[AssignmentService, asyncio.Task[InvokeResult]]:
    """A service with one invoke held open in its sandbox."""
    fake.gate = asyncio.Event()
    assignment = await service(fake, clock, handoff_wait_s=30)
    first = asyncio.create_task(assignment.invoke(config(), request(1)))
    await until_invoked(1, fake)
    return assignment, first


async def test_an_invoke_waits_for_a_busy_sandbox_instead_of_starting_one() -> None:
    clock = FakeClock()
    fake = SlowStart(clock)
    assignment, first = await one_running(fake, clock)

    second = asyncio.create_task(assignment.invoke(config(), request(2)))
    await until_waiting(assignment, 1)
    fake.gate.set()
    results = await asyncio.gather(first, second)

    assert [r.cold for r in results] == [True, False]
    assert len(fake.created) == 1
    assert assignment.snapshot().handoffs == 1


async def test_no_more_invokes_wait_than_there_are_busy_sandboxes() -> None:
    clock = FakeClock()
    fake = SlowStart(clock)
    assignment, first = await one_running(fake, clock)

    others = [asyncio.create_task(assignment.invoke(config(), request(i))) for i in (2, 3)]
    await until_invoked(2, fake)  # the third started its own sandbox without waiting
    fake.gate.set()
    await asyncio.gather(first, *others)

    assert len(fake.created) == 2


async def test_an_invoke_waits_no_longer_than_the_functions_cold_start_time() -> None:
    clock = FakeClock()
    fake = FakeWorker("w1")  # cold starts take no time on the fake clock: the floor applies
    assignment, first = await one_running(fake, clock)

    second = asyncio.create_task(assignment.invoke(config(), request(2)))
    await until_waiting(assignment, 1)
    await until_sleeping(clock)
    # The floor of a cold start, plus as long again for the invoke it waits for.
    clock.advance(HANDOFF_FLOOR_S)
    still_waiting = assignment.snapshot().waiting
    clock.advance(HANDOFF_FLOOR_S * 1.01)  # past the limit despite rounding
    await until_invoked(2, fake)
    fake.gate.set()
    await asyncio.gather(first, second)

    assert still_waiting == 1
    assert len(fake.created) == 2


async def test_the_hand_over_wait_passes_only_on_the_injected_clock() -> None:
    clock = FakeClock()
    fake = FakeWorker("w1")
    assignment, first = await one_running(fake, clock)

    second = asyncio.create_task(assignment.invoke(config(), request(2)))
    await until_waiting(assignment, 1)
    await asyncio.sleep(HANDOFF_FLOOR_S * 2)  # real time passing changes nothing
    waiting_after_real_time = assignment.snapshot().waiting
    fake.gate.set()
    results = await asyncio.gather(first, second)

    assert waiting_after_real_time == 1
    assert [r.cold for r in results] == [True, False]
    assert len(fake.created) == 1


async def test_a_wait_that_times_out_starts_a_sandbox() -> None:
    clock = FakeClock()
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment = await service(fake, clock, handoff_wait_s=0.01)
    first = asyncio.create_task(assignment.invoke(config(), request(1)))
    await until_invoked(1, fake)

    second = asyncio.create_task(assignment.invoke(config(), request(2)))
    await until_waiting(assignment, 1)
    await until_sleeping(clock)
    clock.advance(0.011)
    await until_invoked(2, fake)
    fake.gate.set()
    results = await asyncio.gather(first, second)

    assert [r.cold for r in results] == [True, True]
    assert assignment.snapshot().peak_busy == 2


async def test_cold_starts_beyond_the_scaling_budget_are_throttled_warm_ones_are_not() -> None:
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    clock = FakeClock()
    budget = ScalingBudget(capacity=2, period_s=10, clock=clock)
    assignment = await service(fake, clock, budget=budget, handoff_wait_s=0)
    running = [asyncio.create_task(assignment.invoke(config(), request(i))) for i in (1, 2)]
    await until_invoked(2, fake)

    with pytest.raises(ScaleThrottled) as refused:
        await assignment.invoke(config(), request(3))
    fake.gate.set()
    await asyncio.gather(*running)
    warm = await assignment.invoke(config(), request(4))

    assert refused.value.reason == RATE_LIMIT_EXCEEDED
    assert refused.value.retry_after_s == pytest.approx(5.0)
    assert not warm.cold
    assert assignment.snapshot().created == 2


async def test_a_policy_window_with_prewarm_unloads_now_and_loads_again_when_due() -> None:
    fake = FakeWorker("w1")
    clock = FakeClock()
    policy = FixedWindow(Window(prewarm_s=300, keep_alive_s=120))
    assignment = await service(fake, clock, policy=policy)

    await assignment.invoke(config(), request(1))
    await asyncio.sleep(0)
    assert fake.destroyed == fake.created
    assert assignment.snapshot().prewarms_scheduled == 1

    clock.advance(300)
    assignment.reap()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(fake.created) == 2 and assignment.snapshot().idle == 1

    clock.advance(120)
    assert assignment.reap() == 1


async def test_an_invoke_before_the_prewarm_cancels_it() -> None:
    fake = FakeWorker("w1")
    clock = FakeClock()
    assignment = await service(fake, clock, policy=FixedWindow(Window(300, 120)))
    await assignment.invoke(config(), request(1))

    await assignment.invoke(config(), request(2))

    assert assignment.snapshot().prewarms_scheduled == 1  # only the second invoke's
    clock.advance(300)
    assignment.reap()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(fake.created) == 3


async def test_the_hybrid_policy_drives_the_platform_with_the_replays_code() -> None:
    fake = FakeWorker("w1")
    clock = FakeClock()
    policy = HybridHistogramPolicy()
    assignment = await service(fake, clock, policy=policy)

    for n in range(10):
        await assignment.invoke(config(), request(n))
        clock.advance(30 * 60)
        assignment.reap()
        await asyncio.sleep(0)

    window = assignment.snapshot().keep_alive[config().key]
    assert window.prewarm_s > 0
    assert assignment.snapshot().prewarms_scheduled == 0  # it was loaded again on time


async def test_eviction_spares_provisioned_sandboxes_and_takes_the_soonest_to_expire() -> None:
    fake = FakeWorker("w1")  # 1024 MB
    clock = FakeClock()
    assignment = await service(fake, clock, keep_alive_s=60)
    kept = config("kept", memory=512)
    await assignment.prewarm(kept)
    assignment.provision(kept.key, {(kept.key, kept.version, kept.revision_id): 1})
    await assignment.invoke(config("plain", memory=256), request())
    clock.advance(10)
    await assignment.invoke(config("later", memory=256), request())

    await assignment.invoke(config("fresh", memory=256), request())
    await asyncio.sleep(0)

    assert fake.destroyed == [fake.created[1]]
    shown = {config(name).key: 1 for name in ("kept", "later", "fresh")}
    assert assignment.snapshot().per_function == shown
