"""Assignment: warm reuse, a new sandbox per concurrent invoke, keep-alive, retirement."""

from __future__ import annotations

import asyncio

import pytest

from lamina.assignment import AssignmentService, InvokeRequest, NoCapacity
from lamina.clock import FakeClock
from lamina.placement.fleet import Fleet, Registration
from lamina.registry.model import FunctionConfig
from lamina.sandbox.states import IllegalTransition, Lifecycle, SandboxState
from lamina.worker.client import InvokeReply, SandboxGone, SandboxStart


class FakeWorker:
    """Stands in for a worker's HTTP API; `gate` lets a test hold invokes open."""

    def __init__(
        self, worker_id: str, zone: str = "a", arrivals: asyncio.Condition | None = None
    ) -> None:
        self.worker_id = worker_id
        self.zone = zone
        self.created: list[str] = []
        self.destroyed: list[str] = []
        self.invoked: list[str] = []
        self.gone: set[str] = set()
        self.gate: asyncio.Event | None = None
        # Shared between fakes when a test waits for invokes spread over several of them.
        self.arrivals = arrivals or asyncio.Condition()

    async def create_sandbox(
        self, sandbox_id: str, config: FunctionConfig, provisioned: bool = False
    ) -> SandboxStart:
        self.created.append(sandbox_id)
        return SandboxStart(True, 5.0, None, None, b"", None)

    async def invoke(self, sandbox_id: str, payload: bytes, headers: dict) -> InvokeReply:
        if sandbox_id in self.gone:
            raise SandboxGone(sandbox_id)
        self.invoked.append(sandbox_id)
        async with self.arrivals:
            self.arrivals.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        return InvokeReply(payload, None, True, None)

    async def destroy(self, sandbox_id: str) -> None:
        self.destroyed.append(sandbox_id)


async def until_invoked(total: int, *workers: FakeWorker) -> None:
    """Wait until the workers (sharing one condition) together hold `total` invokes."""
    arrivals = workers[0].arrivals
    async with arrivals:
        await arrivals.wait_for(lambda: sum(len(w.invoked) for w in workers) >= total)


def config(name: str = "f", revision: str = "r1", memory: int = 128) -> FunctionConfig:
    return FunctionConfig(
        name=name, runtime="python3.11", handler="index.handler", role="r",
        code_sha256="00" * 32, code_size=1, revision_id=revision, last_modified="",
        memory_size=memory, state="Active",
    )  # fmt: skip


def request(n: int = 0) -> InvokeRequest:
    return InvokeRequest(request_id=f"req-{n}", payload=b"{}", invoked_arn="arn")


def registration(
    worker_id: str, zone: str = "a", incarnation: str = "i1", idle: tuple[str, ...] = ()
) -> Registration:
    """What a worker of the fakes' shape says when it registers or renews."""
    return Registration(
        worker_id=worker_id,
        zone=zone,
        url=f"http://{worker_id}.invalid:1",
        memory_capacity_mb=1024,
        runtimes={"python3.11": "x"},
        architecture="x86_64",
        incarnation=incarnation,
        idle_sandboxes=idle,
    )


async def setup(*workers: FakeWorker) -> tuple[AssignmentService, FakeClock]:
    """A service over fake workers; invokes start sandboxes at once rather than wait for a
    busy one (the hand-over has its own tests)."""
    by_id = {fake.worker_id: fake for fake in workers}
    fleet = Fleet(connect=lambda worker_id, url: by_id[worker_id])  # type: ignore[arg-type,return-value]
    for fake in workers:
        fleet.register(registration(fake.worker_id, fake.zone))
    clock = FakeClock()
    return AssignmentService(fleet, clock, keep_alive_s=60, handoff_wait_s=0), clock


async def test_a_second_invoke_reuses_the_warm_sandbox() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)

    first = await assignment.invoke(config(), request(1))
    second = await assignment.invoke(config(), request(2))

    assert first.cold and not second.cold
    assert len(fake.created) == 1
    assert fake.invoked == [fake.created[0]] * 2


async def run_together(assignment: AssignmentService, fake: FakeWorker, count: int) -> None:
    """Run `count` invokes at once to their end, each held until all have reached the worker."""
    fake.gate = asyncio.Event()
    running = [asyncio.create_task(assignment.invoke(config(), request(i))) for i in range(count)]
    await until_invoked(count, fake)
    fake.gate.set()
    await asyncio.gather(*running)


async def test_concurrent_invokes_each_get_their_own_sandbox() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)

    await run_together(assignment, fake, 3)

    assert len(set(fake.invoked)) == 3
    assert assignment.snapshot().idle == 3


async def test_sandboxes_are_never_shared_between_functions_or_revisions() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)

    await assignment.invoke(config("f"), request())
    await assignment.invoke(config("g"), request())
    await assignment.invoke(config("f", revision="r2"), request())

    assert len(fake.created) == 3


async def test_idle_sandboxes_are_reclaimed_after_the_keep_alive_time() -> None:
    fake = FakeWorker("w1")
    assignment, clock = await setup(fake)
    await assignment.invoke(config(), request())

    clock.advance(59)
    assert assignment.reap() == 0
    clock.advance(1)
    assert assignment.reap() == 1
    await asyncio.sleep(0)

    assert fake.destroyed == fake.created
    assert assignment.snapshot().idle == 0


async def test_a_sandbox_that_vanished_is_replaced_without_failing_the_invoke() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)
    await assignment.invoke(config(), request(1))
    fake.gone.add(fake.created[0])

    result = await assignment.invoke(config(), request(2))

    assert result.cold
    assert len(fake.created) == 2


async def test_after_a_warm_sandbox_was_gone_the_invoke_takes_a_new_one() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)
    # Three warm sandboxes, whose runtimes have all ended by the next invoke.
    await run_together(assignment, fake, 3)
    fake.gone.update(fake.created)

    result = await assignment.invoke(config(), request(4))

    assert result.cold
    assert len(fake.created) == 4
    # One warm sandbox was tried, not every one of them.
    assert assignment.snapshot().per_function == {config().key: 3}


async def test_retiring_a_function_destroys_its_idle_sandboxes() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)
    await assignment.invoke(config("f"), request())
    await assignment.invoke(config("g"), request())

    assignment.retire(config("f").key)
    await asyncio.sleep(0)

    assert fake.destroyed == [fake.created[0]]
    assert assignment.snapshot().per_function == {config("g").key: 1}


async def test_a_sandbox_never_serves_the_same_function_of_another_account() -> None:
    fake = FakeWorker("w1")
    assignment, _ = await setup(fake)
    mine, theirs = config("f"), config("f").replace(account_id="111111111111")
    await assignment.invoke(mine, request(1))

    second = await assignment.invoke(theirs, request(2))
    again = await assignment.invoke(mine, request(3))

    assert second.cold and not again.cold
    assert len(fake.created) == 2
    assert assignment.snapshot().per_function == {mine.key: 1, theirs.key: 1}


async def test_new_sandboxes_of_a_function_spread_over_zones() -> None:
    arrivals = asyncio.Condition()
    a, b = FakeWorker("wa", "a", arrivals), FakeWorker("wb", "b", arrivals)
    a.gate = b.gate = asyncio.Event()
    assignment, _ = await setup(a, b)

    running = [asyncio.create_task(assignment.invoke(config(), request(i))) for i in range(4)]
    await until_invoked(4, a, b)
    a.gate.set()
    await asyncio.gather(*running)

    assert len(a.created) == 2 and len(b.created) == 2


def test_an_illegal_transition_names_the_current_state() -> None:
    lifecycle = Lifecycle("sb-1")
    lifecycle.to(SandboxState.IDLE)
    lifecycle.to(SandboxState.DEAD)

    with pytest.raises(IllegalTransition, match="sandbox sb-1 is dead; it cannot become busy"):
        lifecycle.to(SandboxState.BUSY)


async def test_a_full_worker_evicts_its_least_recently_used_idle_sandboxes() -> None:
    fake = FakeWorker("w1")  # 1024 MB
    assignment, clock = await setup(fake)
    for name in ("old", "newer"):
        await assignment.invoke(config(name, memory=512), request())
        clock.advance(1)

    await assignment.invoke(config("fresh", memory=512), request())
    await asyncio.sleep(0)

    assert fake.destroyed == [fake.created[0]]
    assert assignment.snapshot().per_function == {config("newer").key: 1, config("fresh").key: 1}


async def test_busy_sandboxes_are_never_evicted() -> None:
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment, _ = await setup(fake)
    running = asyncio.create_task(assignment.invoke(config("busy", memory=1024), request()))
    await until_invoked(1, fake)

    other = asyncio.create_task(assignment.invoke(config("other", memory=128), request()))
    for _ in range(100):  # let the other invoke find the worker full
        await asyncio.sleep(0)
    while_busy = (list(fake.created), list(fake.destroyed))
    fake.gate.set()
    await asyncio.gather(running, other)

    busy_sandbox = fake.created[0]
    assert while_busy == ([busy_sandbox], [])
    assert fake.destroyed == [busy_sandbox]  # evicted only once it went idle
    assert assignment.snapshot().per_function == {config("other").key: 1}


async def test_a_sandbox_no_worker_could_ever_hold_is_refused_at_once() -> None:
    fake = FakeWorker("w1")  # 1024 MB
    assignment, _ = await setup(fake)

    with pytest.raises(NoCapacity) as refused:
        await assignment.invoke(config("huge", memory=2048), request())

    assert type(refused.value) is NoCapacity  # not worth waiting for
    assert "needs 2048 MB" in str(refused.value)
    assert fake.created == []
