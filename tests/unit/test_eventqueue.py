"""The event queue driven step by step with a fake clock: retries, leases, age, destinations."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lamina.clock import FakeClock
from lamina.eventqueue import (
    Attempt,
    AttemptKind,
    Condition,
    EventQueue,
    EventStore,
    InvokeConfig,
    Poller,
    QueuedEvent,
    Target,
)
from lamina.eventqueue.policy import BACKOFF_MAX_S, Timing
from lamina.tenancy import DEFAULT_ACCOUNT, FunctionKey

ARN = "arn:aws:lambda:us-east-1:000000000000:function:"
FAILURE = Attempt(AttemptKind.RAN, b'{"errorMessage": "boom"}', "Unhandled")
THROTTLED = Attempt(AttemptKind.THROTTLED, status_code=429)


def key(name: str) -> FunctionKey:
    return FunctionKey.of(DEFAULT_ACCOUNT, name)


@dataclass
class FakeInvoker:
    """Runs nothing: answers each attempt from a script and remembers what it was asked.

    Functions, scripts and calls are by name: every event here is of the default account.
    """

    clock: FakeClock
    functions: dict[str, Target] = field(default_factory=dict)
    script: dict[str, list[Attempt]] = field(default_factory=dict)
    calls: list[tuple[str, str, float]] = field(default_factory=list)
    payloads: dict[str, list[bytes]] = field(default_factory=dict)
    hold: asyncio.Event | None = None

    def target(self, function: str) -> Target | None:
        return self.functions.get(FunctionKey(function).name)

    async def invoke(self, event: QueuedEvent) -> Attempt:
        name = FunctionKey(event.function).name
        self.calls.append((name, event.request_id, self.clock.time()))
        self.payloads.setdefault(name, []).append(event.payload)
        if self.hold is not None:
            await self.hold.wait()
        answers = self.script.get(name) or []
        return answers.pop(0) if answers else Attempt(AttemptKind.RAN, b'{"ok": true}')

    def ran(self, function: str) -> list[tuple[str, str, float]]:
        return [call for call in self.calls if call[0] == function]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def queue(tmp_path: Path, clock: FakeClock) -> AsyncIterator[EventQueue]:
    events = EventQueue(EventStore(tmp_path / "events.db"), clock)
    yield events
    events.close()


@pytest.fixture
def invoker(clock: FakeClock) -> FakeInvoker:
    functions = {name: Target(3.0, False) for name in ("fn", "sink", "win")}
    return FakeInvoker(clock, functions)


@pytest.fixture
def poller(queue: EventQueue, invoker: FakeInvoker, clock: FakeClock) -> Poller:
    return Poller(queue, invoker, clock)


async def accept(queue: EventQueue, request_id: str, function: str = "fn", body: str = "{}"):
    await queue.accept(
        request_id=request_id,
        function=key(function),
        function_arn=f"{ARN}{function}:$LATEST",
        invoked_arn=f"{ARN}{function}",
        payload=body.encode(),
        trace_id="",
    )


async def step(poller: Poller) -> int:
    """One poll at the current time, run to the end; how many events it started."""
    tasks = await poller.poll_once()
    await asyncio.gather(*tasks)
    return len(tasks)


async def configure(queue: EventQueue, clock: FakeClock, **settings: object) -> None:
    await queue.put_config(InvokeConfig(key("fn"), "$LATEST", clock.time(), **settings))  # type: ignore[arg-type]


# Retries of function errors


async def test_a_raising_handler_runs_three_times_a_minute_then_two_apart_then_goes_to_on_failure(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, on_failure=f"{ARN}sink")
    invoker.script["fn"] = [FAILURE, FAILURE, FAILURE]
    await accept(queue, "req-1", body='{"n": 1}')
    start = clock.time()

    assert await step(poller) == 1
    clock.advance(59)
    assert await step(poller) == 0
    clock.advance(1)
    assert await step(poller) == 1
    clock.advance(119)
    assert await step(poller) == 0
    clock.advance(1)
    assert await step(poller) == 1
    assert await step(poller) == 1  # the record, to the destination

    assert [t - start for _, _, t in invoker.ran("fn")] == [0, 60, 180]
    assert {request_id for _, request_id, _ in invoker.ran("fn")} == {"req-1"}
    record = json.loads(invoker.payloads["sink"][0])
    assert record["requestContext"] == {
        "requestId": "req-1",
        "functionArn": f"{ARN}fn:$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["version"] == "1.0"
    assert record["requestPayload"] == {"n": 1}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"] == {"errorMessage": "boom"}
    assert record["timestamp"].endswith("Z")
    assert await queue.call(queue.store.failed) == []


async def test_maximum_retry_attempts_of_zero_runs_a_failing_event_once(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, max_retries=0)
    invoker.script["fn"] = [FAILURE]
    await accept(queue, "req-1")

    await step(poller)
    clock.advance(3600)
    await step(poller)

    assert len(invoker.ran("fn")) == 1
    [kept] = await queue.call(queue.store.failed, key("fn"))
    assert kept.condition is Condition.RETRIES_EXHAUSTED


async def test_a_success_sends_its_record_to_on_success_with_the_functions_answer(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, on_success=f"{ARN}sink")
    await accept(queue, "req-1", body='{"a": 1}')

    await step(poller)
    await step(poller)

    record = json.loads(invoker.payloads["sink"][0])
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST"}
    assert record["responsePayload"] == {"ok": True}


async def test_a_success_without_on_success_leaves_nothing_behind(
    queue: EventQueue, poller: Poller, clock: FakeClock
) -> None:
    await accept(queue, "req-1")

    await step(poller)

    snapshot = await queue.snapshot()
    assert snapshot.per_function == {}


# Event age


async def test_a_retry_that_would_start_past_the_maximum_age_ends_the_event_as_age_exceeded(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, max_event_age_s=100, on_failure=f"{ARN}sink")
    invoker.script["fn"] = [FAILURE, FAILURE]
    await accept(queue, "req-1")

    await step(poller)
    clock.advance(60)
    await step(poller)
    await step(poller)

    assert len(invoker.ran("fn")) == 2
    record = json.loads(invoker.payloads["sink"][0])
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 2


async def test_an_event_older_than_its_maximum_age_is_not_run_at_all(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, max_event_age_s=60)
    await accept(queue, "req-1")

    clock.advance(61)
    await step(poller)

    assert invoker.ran("fn") == []
    [kept] = await queue.call(queue.store.failed, key("fn"))
    assert kept.condition is Condition.EVENT_AGE_EXCEEDED


# Throttles and platform errors


async def test_throttled_events_back_off_from_one_second_doubling_and_then_run(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    invoker.script["fn"] = [THROTTLED, THROTTLED, THROTTLED]
    await accept(queue, "req-1")

    started = [await step(poller)]
    counters = (await queue.snapshot()).per_function[key("fn")]
    for wait in (1.0, 2.0, 4.0):
        clock.advance(wait - 0.1)
        started.append(await step(poller))
        clock.advance(0.1)
        started.append(await step(poller))

    assert started == [1, 0, 1, 0, 1, 0, 1]
    assert (counters.queued, counters.throttles, counters.retries) == (1, 1, 0)
    assert len(invoker.ran("fn")) == 4
    assert await queue.call(queue.store.failed) == []
    assert (await queue.snapshot()).per_function == {}


def test_back_off_doubles_from_one_second_and_stops_at_five_minutes() -> None:
    timing = Timing()

    waits = [timing.backoff(n) for n in range(12)]

    assert waits[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == BACKOFF_MAX_S == 300.0
    assert waits[-1] == 300.0


async def test_throttles_do_not_count_as_invokes_of_the_function(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, on_success=f"{ARN}sink")
    invoker.script["fn"] = [THROTTLED, Attempt(AttemptKind.PLATFORM_ERROR, status_code=500)]
    await accept(queue, "req-1")

    await step(poller)
    clock.advance(1)
    await step(poller)
    clock.advance(2)
    await step(poller)
    await step(poller)

    record = json.loads(invoker.payloads["sink"][0])
    assert record["requestContext"]["approximateInvokeCount"] == 1


async def test_reserved_concurrency_of_zero_sends_the_event_to_on_failure_without_running_it(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, on_failure=f"{ARN}sink")
    invoker.functions["fn"] = Target(3.0, reserved_zero=True)
    await accept(queue, "req-1", body='{"z": 0}')

    await step(poller)
    await step(poller)

    assert invoker.ran("fn") == []
    record = json.loads(invoker.payloads["sink"][0])
    assert record["requestContext"]["condition"] == "ZeroReservedConcurrency"
    assert record["requestContext"]["approximateInvokeCount"] == 0
    assert record["requestPayload"] == {"z": 0}
    assert "responsePayload" not in record


# Leases


async def test_a_running_event_is_not_handed_to_a_second_poller_while_it_runs(
    queue: EventQueue, invoker: FakeInvoker, clock: FakeClock
) -> None:
    invoker.functions["fn"] = Target(25.0, False)
    invoker.hold = asyncio.Event()
    first = Poller(queue, invoker, clock)
    second = Poller(queue, invoker, clock)
    await accept(queue, "req-1")

    running = await first.poll_once()
    await asyncio.sleep(0)
    for _ in range(20):
        clock.advance(1)
        assert await second.poll_once() == []
        assert await first.poll_once() == []
    invoker.hold.set()
    await asyncio.gather(*running)
    clock.advance(3600)
    assert await second.poll_once() == []

    assert len(invoker.ran("fn")) == 1


async def test_an_event_whose_poller_died_runs_again_with_its_request_id_once_the_lease_ends(
    queue: EventQueue, invoker: FakeInvoker, clock: FakeClock
) -> None:
    invoker.functions["fn"] = Target(20.0, False)
    invoker.hold = asyncio.Event()
    dead = Poller(queue, invoker, clock, lease_margin_s=60.0)
    await accept(queue, "req-1")
    await dead.poll_once()
    await asyncio.sleep(0)
    await dead.stop()  # dies mid-run: nothing is written back
    invoker.hold = None
    survivor = Poller(queue, invoker, clock)

    clock.advance(79)
    assert await step(survivor) == 0
    clock.advance(1)
    assert await step(survivor) == 1

    assert [request_id for _, request_id, _ in invoker.ran("fn")] == ["req-1", "req-1"]
    assert (await queue.snapshot()).per_function == {}


async def test_a_late_outcome_of_a_lost_lease_does_not_undo_the_new_holders_work(
    queue: EventQueue, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await accept(queue, "req-1")
    [stale] = await queue.call(queue.store.lease, clock.time(), 1, "a", lambda _: 10.0)
    clock.advance(11)
    [fresh] = await queue.call(queue.store.lease, clock.time(), 1, "b", lambda _: 10.0)

    assert await queue.call(queue.store.finish, stale, None) is False
    assert await queue.call(queue.store.finish, fresh, None) is True


# Durability, failed events and replay


async def test_accepted_events_are_on_disk_when_accept_returns(
    tmp_path: Path, queue: EventQueue, clock: FakeClock
) -> None:
    await asyncio.gather(*(accept(queue, f"req-{i}") for i in range(50)))

    reopened = EventStore(tmp_path / "events.db")
    due = reopened.lease(clock.time(), 100, "other", lambda _: 1.0)
    reopened.close()

    assert sorted(e.request_id for e in due) == sorted(f"req-{i}" for i in range(50))


async def test_leases_of_a_dead_process_are_released_at_start(
    tmp_path: Path, queue: EventQueue, clock: FakeClock
) -> None:
    await accept(queue, "req-1")
    await queue.call(queue.store.lease, clock.time(), 10, "dead", lambda _: 900.0)

    restarted = EventStore(tmp_path / "events.db")
    released = restarted.release_all_leases()
    due = restarted.lease(clock.time(), 10, "new", lambda _: 1.0)
    restarted.close()

    assert released == 1
    assert [e.request_id for e in due] == ["req-1"]


async def test_a_failed_event_without_a_destination_is_kept_and_replays_with_its_request_id(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, max_retries=0)
    invoker.script["fn"] = [FAILURE]
    await accept(queue, "req-1", body='{"keep": 1}')
    await step(poller)

    [kept] = await queue.call(queue.store.failed, key("fn"))
    replayed = await queue.call(queue.store.replay, clock.time(), key("fn"), ())
    await step(poller)

    assert kept.event.request_id == "req-1"
    assert kept.event.payload == b'{"keep": 1}'
    assert kept.event.last is not None and kept.event.last.function_error == "Unhandled"
    assert replayed == 1
    assert [request_id for _, request_id, _ in invoker.ran("fn")] == ["req-1", "req-1"]
    assert await queue.call(queue.store.failed, key("fn")) == []


async def test_a_failure_whose_destination_function_is_gone_is_kept_not_dropped(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    await configure(queue, clock, max_retries=0, on_failure=f"{ARN}sink")
    del invoker.functions["sink"]
    invoker.script["fn"] = [FAILURE]
    await accept(queue, "req-1")

    await step(poller)

    [kept] = await queue.call(queue.store.failed, key("fn"))
    assert kept.condition is Condition.RETRIES_EXHAUSTED


async def test_the_snapshot_counts_depth_oldest_age_and_retries_per_function(
    queue: EventQueue, poller: Poller, invoker: FakeInvoker, clock: FakeClock
) -> None:
    invoker.script["fn"] = [FAILURE, FAILURE]
    await accept(queue, "req-1")
    clock.advance(5)
    await accept(queue, "req-2", function="win")
    await step(poller)  # req-1 fails once, req-2 succeeds
    clock.advance(60)
    await step(poller)  # req-1 fails again: its second run was a retry
    clock.advance(10)

    snapshot = await queue.snapshot()

    counters = snapshot.per_function[key("fn")]
    assert counters.queued == 1
    assert counters.retries == 1
    assert counters.oldest_age_s == 75
    assert key("win") not in snapshot.per_function


async def test_no_more_events_start_than_the_poller_has_slots(
    queue: EventQueue, invoker: FakeInvoker, clock: FakeClock
) -> None:
    invoker.hold = asyncio.Event()
    small = Poller(queue, invoker, clock, max_in_flight=3)
    for i in range(5):
        await accept(queue, f"req-{i}")

    first = await small.poll_once()
    second = await small.poll_once()
    invoker.hold.set()
    await asyncio.gather(*first)
    third = await small.poll_once()
    await asyncio.gather(*third)

    assert (len(first), len(second), len(third)) == (3, 0, 2)
