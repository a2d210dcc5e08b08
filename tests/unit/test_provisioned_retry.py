"""A FAILED provisioned configuration is retried with backoff on the injected clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from lamina.assignment import InvokeResult
from lamina.assignment.manager import VersionKey, version_key
from lamina.clock import FakeClock
from lamina.frontend import provisioned
from lamina.frontend.provisioned import INIT_FAILURE, RETRY_FIRST_S
from lamina.frontend.shapes import Scope
from lamina.registry.model import ProvisionedConcurrency
from tests.unit.test_assignment import config

INIT_ERROR = InvokeResult(
    b'{"errorType": "Runtime.ImportModuleError"}', "Runtime.Import", None, True
)


@dataclass
class Versions:
    """The registry's versions part, with one published version "1" of function "f"."""

    entries: dict[str, ProvisionedConcurrency] = field(default_factory=dict)

    def version(self, name: str, number: str) -> Any:
        return config(name) if number == "1" else None

    def provisioned_for(self, name: str, qualifier: str) -> ProvisionedConcurrency | None:
        return self.entries.get(qualifier)

    def put_provisioned(self, name: str, entry: ProvisionedConcurrency) -> None:
        self.entries[entry.qualifier] = entry


@dataclass
class Registry:
    versions: Versions = field(default_factory=Versions)


class Assignment:
    """Starts sandboxes whose init fails the first `failures` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.started: dict[VersionKey, int] = {}

    async def prewarm(self, started: Any, provisioned: bool = False) -> InvokeResult | None:
        self.attempts += 1
        if self.attempts <= self.failures:
            return INIT_ERROR
        key = version_key(started)
        self.started[key] = self.started.get(key, 0) + 1
        return None

    def sandboxes_of(self, key: VersionKey) -> int:
        return self.started.get(key, 0)

    def ready_sandboxes_of(self, key: VersionKey) -> int:
        return self.started.get(key, 0)


@dataclass
class Context:
    registry: Registry
    assignment: Assignment
    clock: FakeClock
    scope: Scope = field(default_factory=lambda: Scope("us-east-1", "000000000000"))
    provisioning: dict[tuple[str, str, str], asyncio.Event] = field(default_factory=dict)


async def settle(clock: FakeClock, fill: asyncio.Task[None]) -> None:
    """Let the fill run until it sleeps on the clock or ends."""
    for _ in range(1000):
        if clock.sleepers or fill.done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the fill neither slept nor ended")


def start(failures: int, requested: int = 2) -> tuple[Context, asyncio.Task[None]]:
    ctx = Context(Registry(), Assignment(failures), FakeClock())
    ctx.registry.versions.put_provisioned("f", ProvisionedConcurrency("1", requested, "t"))
    wake = ctx.provisioning[("000000000000", "f", "1")] = asyncio.Event()
    task = asyncio.create_task(provisioned.fill(ctx, "f", "1", wake))  # type: ignore[arg-type]
    return ctx, task


async def test_a_failed_configuration_is_retried_with_backoff_until_it_is_met() -> None:
    ctx, fill = start(failures=2)

    await settle(ctx.clock, fill)
    first = ctx.registry.versions.entries["1"].failure
    ctx.clock.advance(RETRY_FIRST_S)
    await settle(ctx.clock, fill)
    ctx.clock.advance(RETRY_FIRST_S)  # the second wait is twice as long: not over yet
    await asyncio.sleep(0)
    attempts_before_backoff_ends = ctx.assignment.attempts
    ctx.clock.advance(RETRY_FIRST_S)
    await fill

    assert first == INIT_FAILURE
    assert attempts_before_backoff_ends == 2
    assert ctx.assignment.attempts == 4  # two failures, then the two sandboxes asked for
    assert ctx.registry.versions.entries["1"].failure is None
    assert ctx.provisioning == {}


async def test_a_failed_configuration_answers_failed_with_lambdas_reason() -> None:
    ctx, fill = start(failures=10, requested=1)

    await settle(ctx.clock, fill)
    entry = ctx.registry.versions.entries["1"]
    doc = provisioned._render(ctx, entry, config("f"))  # type: ignore[arg-type]
    fill.cancel()

    assert doc["Status"] == "FAILED"
    assert doc["StatusReason"] == "FUNCTION_ERROR_INIT_FAILURE"
    assert doc["AvailableProvisionedConcurrentExecutions"] == 0


async def test_a_retry_waits_for_the_injected_clock_not_real_time() -> None:
    ctx, fill = start(failures=1)

    await settle(ctx.clock, fill)
    await asyncio.sleep(RETRY_FIRST_S / 20)
    attempts = ctx.assignment.attempts
    fill.cancel()

    assert attempts == 1


async def test_a_new_put_wakes_a_retry_at_once() -> None:
    ctx, fill = start(failures=1, requested=1)

    await settle(ctx.clock, fill)
    ctx.registry.versions.put_provisioned("f", ProvisionedConcurrency("1", 1, "t2"))
    ctx.provisioning[("000000000000", "f", "1")].set()
    await fill

    assert ctx.assignment.attempts == 2
    assert ctx.assignment.sandboxes_of(version_key(config("f"))) == 1
