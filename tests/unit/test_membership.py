"""Membership leases, losing a worker mid-invoke, and draining, judged on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from lamina.assignment import AssignmentService, PlatformFailure, UnknownWorker
from lamina.clock import FakeClock
from lamina.placement.fleet import Fleet, MembershipError, Registration
from lamina.registry.model import FunctionConfig
from lamina.worker.client import SandboxStart, WorkerUnreachable
from lamina.worker.membership import STALL_LIMIT_S, Published
from tests.unit.test_assignment import (
    FakeWorker,
    config,
    registration,
    request,
    until_invoked,
)


class SlowStartWorker(FakeWorker):
    """A worker whose sandbox starts hang until `started` is set."""

    def __init__(self, worker_id: str, zone: str = "a") -> None:
        super().__init__(worker_id, zone)
        self.started = asyncio.Event()
        self.starting = asyncio.Event()

    async def create_sandbox(
        self, sandbox_id: str, config: FunctionConfig, provisioned: bool = False
    ) -> SandboxStart:
        self.starting.set()
        await self.started.wait()
        return await super().create_sandbox(sandbox_id, config)


def cluster(*fakes: FakeWorker) -> tuple[AssignmentService, FakeClock]:
    clock = FakeClock()
    by_id = {f.worker_id: f for f in fakes}
    fleet = Fleet(clock, lease_s=3.0, connect=lambda worker_id, url: by_id[worker_id])  # type: ignore[arg-type,return-value]
    assignment = AssignmentService(fleet, clock, keep_alive_s=600)
    for fake in fakes:
        assignment.admit(registration(fake.worker_id, fake.zone))
    return assignment, clock


def test_a_worker_that_renews_its_lease_stays_and_one_that_stops_leaves() -> None:
    assignment, clock = cluster(FakeWorker("w1"), FakeWorker("w2"))

    clock.advance(2.5)
    assert assignment.admit(registration("w1")) == (False, [])
    clock.advance(2.5)

    assert assignment.expire_members() == ["w2"]
    assert list(assignment.fleet.members) == ["w1"]
    clock.advance(0.4)
    assert assignment.expire_members() == []
    clock.advance(0.1)
    assert assignment.expire_members() == ["w1"]


async def test_a_lost_worker_leaves_no_sandbox_record_behind() -> None:
    fake = FakeWorker("w1")
    assignment, clock = cluster(fake, FakeWorker("w2", zone="b"))
    await assignment.invoke(config(), request())
    assert assignment.occupancy()["w1"].sandboxes == 1

    clock.advance(3.0)
    assignment.admit(registration("w2", zone="b"))
    assignment.expire_members()

    assert "w1" not in assignment.occupancy()
    assert assignment.snapshot().idle == 0


async def test_a_restarted_worker_is_a_new_member_without_its_former_sandboxes() -> None:
    assignment, _ = cluster(FakeWorker("w1"))
    await assignment.invoke(config(), request())

    assert assignment.admit(registration("w1", incarnation="i2"))[0]

    assert assignment.snapshot().idle == 0
    assert assignment.fleet.members["w1"].healthy


async def test_an_invoke_running_on_a_worker_whose_lease_lapses_fails_at_once() -> None:
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()  # the event reached the sandbox and never comes back
    assignment, clock = cluster(fake)
    running = asyncio.create_task(assignment.invoke(config(), request()))
    await until_invoked(1, fake)

    clock.advance(3.0)
    assignment.expire_members()

    with pytest.raises(PlatformFailure, match="left the fleet"):
        await asyncio.wait_for(running, timeout=5)
    assert assignment.snapshot().busy == 0


async def test_an_invoke_whose_sandbox_was_still_starting_on_a_lost_worker_runs_elsewhere() -> (
    None
):
    stuck = SlowStartWorker("w1")
    other = FakeWorker("w2", zone="b")
    assignment, clock = cluster(stuck, other)
    running = asyncio.create_task(assignment.invoke(config(), request()))
    await stuck.starting.wait()

    clock.advance(3.0)
    assignment.admit(registration("w2", zone="b"))
    assignment.expire_members()
    result = await asyncio.wait_for(running, timeout=5)

    assert result.cold
    assert other.invoked == other.created


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"zone": ""}, "zone must be a non-empty string"),
        ({"memory_capacity_mb": 0}, "memory_capacity_mb must be a positive integer"),
        ({"memory_capacity_mb": "1024"}, "memory_capacity_mb must be a positive integer"),
        ({"runtimes": ["python3.11"]}, "runtimes must map runtime names to versions"),
        ({"url": "ftp://x"}, "url must be an http:// or https:// URL"),
        ({"idle_sandboxes": "s1"}, "idle_sandboxes must be a list of sandbox ids"),
    ],
)
def test_a_malformed_registration_is_refused_with_the_reason(change: dict, message: str) -> None:
    doc = {**registration("w1").__dict__, "idle_sandboxes": [], **change}

    with pytest.raises(MembershipError, match=message):
        Registration.from_dict(doc)


def test_a_registration_missing_fields_names_them() -> None:
    with pytest.raises(MembershipError, match="registration lacks incarnation, url"):
        Registration.from_dict({"worker_id": "w", "zone": "a", "memory_capacity_mb": 1,
                                "runtimes": {}, "architecture": "x86_64"})  # fmt: skip


async def test_draining_reclaims_idle_sandboxes_lets_busy_ones_finish_and_places_nothing() -> None:
    fake = FakeWorker("w1")
    assignment, _ = cluster(fake, FakeWorker("w2"))
    await assignment.invoke(config("idle"), request())
    fake.gate = asyncio.Event()
    busy = asyncio.create_task(assignment.invoke(config("busy"), request()))
    await until_invoked(2, fake)

    assignment.drain("w1")
    await asyncio.sleep(0)
    assert len(fake.destroyed) == 1
    assert assignment.busy_on("w1") == 1

    fake.gate.set()
    await busy
    await asyncio.sleep(0)
    assert "w1" not in assignment.occupancy()
    assert fake.destroyed == fake.created

    await assignment.invoke(config("new"), request())
    assert assignment.decisions[-1].decision.worker_id == "w2"
    assert "w1: draining" in assignment.decisions[-1].decision.explain()


def test_draining_an_unknown_worker_is_refused() -> None:
    assignment, _ = cluster(FakeWorker("w1"))

    with pytest.raises(UnknownWorker):
        assignment.drain("nope")


async def test_an_invoke_that_finishes_after_its_worker_was_given_up_still_answers() -> None:
    fake = FakeWorker("w1")
    fake.gate = asyncio.Event()
    assignment, _ = cluster(fake)
    running = asyncio.create_task(assignment.invoke(config(), request()))
    await until_invoked(1, fake)

    assignment.worker_lost("w1", "a connection to it failed")
    fake.gate.set()
    result = await running
    await asyncio.sleep(0)

    assert result.payload == b"{}"
    assert fake.destroyed == fake.created
    assert assignment.snapshot().idle == 0


async def test_a_renewal_names_the_idle_sandboxes_the_table_forgot_for_the_worker_to_destroy() -> (
    None
):
    fake = FakeWorker("w1")
    assignment, _ = cluster(fake)
    await assignment.invoke(config("kept"), request())
    kept = fake.created[0]
    assert assignment.admit(registration("w1", idle=(kept,))) == (False, [])

    assignment.worker_lost("w1", "a connection to it failed")

    assert assignment.admit(registration("w1", idle=(kept,))) == (False, [kept])


def test_time_the_frontend_could_not_listen_does_not_count_against_a_lease() -> None:
    assignment, clock = cluster(FakeWorker("w1"))

    clock.advance(5.0)
    assignment.fleet.excuse(4.0)
    assert assignment.expire_members() == []
    clock.advance(2.0)

    assert assignment.expire_members() == ["w1"]


async def test_a_membership_sweep_that_wakes_late_excuses_the_workers_for_its_lateness() -> None:
    assignment, clock = cluster(FakeWorker("w1"))
    member = assignment.fleet.members["w1"]
    granted = member.lease_expires
    sweeping = asyncio.ensure_future(assignment.run_membership(0.01))
    await asyncio.sleep(0)  # the sweep is asleep

    clock.advance(10.0)  # ten seconds in which the frontend's loop read no renewal
    for _ in range(100):  # until the sweep has woken and judged
        if member.lease_expires != granted or member.lost.is_set():
            break
        await asyncio.sleep(0.01)
    sweeping.cancel()

    assert list(assignment.fleet.members) == ["w1"]
    clock.advance(3.0)
    assert assignment.expire_members() == ["w1"]


def test_a_worker_that_renewed_after_a_failed_call_began_is_kept() -> None:
    assignment, clock = cluster(FakeWorker("w1"), FakeWorker("w2"))
    clock.advance(0.5)
    began = clock.monotonic()
    clock.advance(1.0)
    assignment.admit(registration("w1"))
    clock.advance(1.0)

    assignment.unreachable(WorkerUnreachable("w1", "Connection timeout"), began)
    assignment.unreachable(WorkerUnreachable("w2", "Connection timeout"), began)

    assert assignment.fleet.members["w1"].healthy
    assert not assignment.fleet.members["w2"].healthy


def test_a_worker_that_renewed_before_a_failed_call_began_is_given_up() -> None:
    assignment, clock = cluster(FakeWorker("w1"))
    clock.advance(1.0)
    assignment.admit(registration("w1"))
    clock.advance(0.5)

    assignment.unreachable(WorkerUnreachable("w1", "Connection timeout"), clock.monotonic())

    assert not assignment.fleet.members["w1"].healthy


def test_a_published_registration_vouches_for_the_worker_only_while_its_loop_publishes() -> None:
    clock = FakeClock()
    published = Published(clock)
    assert published.current() is None

    published.publish({"worker_id": "w1"})
    clock.advance(STALL_LIMIT_S)
    assert published.current() == {"worker_id": "w1"}

    clock.advance(0.1)
    assert published.current() is None
