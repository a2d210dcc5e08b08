"""Restarting the workers `lamina up` started, and the health answer while one is down,
judged on a fake clock with fake processes."""

from __future__ import annotations

import asyncio

from lamina.clock import FakeClock
from lamina.frontend.health import OwnWorkers, health
from lamina.placement.fleet import Fleet
from lamina.supervisor import RestartBackoff, Supervisor, stop_all
from tests.unit.test_assignment import registration


class FakeProcess:
    """A process that exits when the test says so, or when killed."""

    def __init__(self) -> None:
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def kill(self) -> None:
        self.exit(-9)

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


class Starts:
    """Spawns fake processes; those listed in `failing` (by start number) never get ready."""

    def __init__(self, failing: frozenset[int] = frozenset()) -> None:
        self.processes: list[FakeProcess] = []
        self.failing = failing

    async def spawn(self) -> FakeProcess:
        self.processes.append(FakeProcess())
        return self.processes[-1]

    async def ready(self, process: FakeProcess) -> None:
        if len(self.processes) in self.failing:
            raise RuntimeError("exited before it was ready")


async def settle() -> None:
    """Let every task run until it waits on the clock or on a process."""
    for _ in range(20):
        await asyncio.sleep(0)


async def supervised(
    starts: Starts, clock: FakeClock
) -> tuple[Supervisor[FakeProcess], asyncio.Task[None]]:
    supervisor = Supervisor("worker-1", starts.spawn, starts.ready, clock)
    await supervisor.start()
    task = asyncio.get_running_loop().create_task(supervisor.run())
    await settle()
    return supervisor, task


def test_delays_double_from_half_a_second_up_to_thirty_over_exits_in_a_row() -> None:
    backoff = RestartBackoff(FakeClock())

    delays = [backoff.next_delay() for _ in range(9)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_worker_that_stayed_up_a_minute_is_restarted_after_the_shortest_delay() -> None:
    clock = FakeClock()
    backoff = RestartBackoff(clock)
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]

    backoff.started()
    clock.advance(60)

    assert backoff.next_delay() == 0.5


def test_a_worker_that_exits_again_soon_after_its_restart_waits_longer() -> None:
    clock = FakeClock()
    backoff = RestartBackoff(clock)
    assert [backoff.next_delay() for _ in range(3)] == [0.5, 1.0, 2.0]

    backoff.started()
    clock.advance(10)

    assert backoff.next_delay() == 4.0


async def test_a_worker_that_exits_is_started_again_once_the_delay_has_passed() -> None:
    clock = FakeClock()
    starts = Starts()
    supervisor, task = await supervised(starts, clock)
    assert supervisor.up

    starts.processes[0].exit(-9)
    await settle()
    assert not supervisor.up
    assert len(starts.processes) == 1
    assert clock.sleepers == 1

    clock.advance(0.5)
    await settle()
    assert supervisor.up
    assert len(starts.processes) == 2
    assert supervisor.process is starts.processes[1]
    assert supervisor.restarts == 1
    await stop_all([task])


async def test_a_restart_that_never_gets_ready_is_killed_and_tried_again_later() -> None:
    clock = FakeClock()
    starts = Starts(failing=frozenset({2}))
    supervisor, task = await supervised(starts, clock)

    starts.processes[0].exit(1)
    await settle()
    clock.advance(0.5)
    await settle()
    assert starts.processes[1].returncode == -9
    assert not supervisor.up

    # The next try waits twice as long.
    clock.advance(0.5)
    await settle()
    assert len(starts.processes) == 2
    clock.advance(0.5)
    await settle()
    assert len(starts.processes) == 3
    assert supervisor.up
    await stop_all([task])


async def test_a_stopped_supervisor_starts_nothing_when_its_worker_exits_after() -> None:
    clock = FakeClock()
    starts = Starts()
    _, task = await supervised(starts, clock)

    await stop_all([task])
    starts.processes[0].exit(0)
    clock.advance(60)
    await settle()

    assert len(starts.processes) == 1
    assert task.cancelled()


async def test_a_supervisor_stopped_while_waiting_to_restart_starts_nothing() -> None:
    clock = FakeClock()
    starts = Starts()
    supervisor, task = await supervised(starts, clock)
    starts.processes[0].exit(-9)
    await settle()

    await stop_all([task])
    clock.advance(60)
    await settle()

    assert len(starts.processes) == 1
    assert not supervisor.up


def fleet_of(*worker_ids: str) -> Fleet:
    fleet = Fleet(FakeClock(), connect=lambda worker_id, url: None)  # type: ignore[arg-type]
    for worker_id in worker_ids:
        fleet.register(registration(worker_id))
    return fleet


def test_health_is_ok_while_every_worker_the_platform_started_is_up() -> None:
    own = OwnWorkers(ready=True, expected=("w1", "w2"), up=("w1", "w2"))

    status, body = health(fleet_of("w1", "w2"), own)

    assert status == 200
    assert body["status"] == "ok"
    assert body["workers"] == {"w1": "healthy", "w2": "healthy"}


def test_health_is_degraded_but_serving_while_one_of_two_workers_is_down() -> None:
    own = OwnWorkers(ready=True, expected=("w1", "w2"), up=("w2",))

    status, body = health(fleet_of("w1", "w2"), own)

    assert status == 200
    assert body["status"] == "degraded"
    assert (body["expected"], body["up"]) == (["w1", "w2"], ["w2"])


def test_health_is_unavailable_while_no_worker_is_up_though_its_lease_still_runs() -> None:
    own = OwnWorkers(ready=True, expected=("w1",), up=())

    status, body = health(fleet_of("w1"), own)

    assert status == 503
    assert body["status"] == "unavailable"


def test_health_counts_workers_joined_from_other_hosts_as_serving() -> None:
    own = OwnWorkers(ready=True, expected=("w1",), up=())

    status, body = health(fleet_of("w1", "host-b"), own)

    assert (status, body["status"]) == (200, "degraded")


def test_a_frontend_with_no_workers_of_its_own_is_ok() -> None:
    assert health(fleet_of(), OwnWorkers(ready=True)) == (
        200,
        {"status": "ok", "workers": {}, "expected": [], "up": []},
    )


def test_health_is_unavailable_while_running_workers_have_left_the_fleet() -> None:
    # Their processes run (stopped with SIGSTOP, say) but their leases lapsed.
    own = OwnWorkers(ready=True, expected=("w1", "w2"), up=("w1", "w2"))

    status, body = health(fleet_of(), own)

    assert (status, body["status"], body["up"]) == (503, "unavailable", [])


def test_health_is_degraded_while_one_running_worker_has_left_the_fleet() -> None:
    own = OwnWorkers(ready=True, expected=("w1", "w2"), up=("w1", "w2"))

    status, body = health(fleet_of("w2"), own)

    assert (status, body["status"], body["up"]) == (200, "degraded", ["w2"])
