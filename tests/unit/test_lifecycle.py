"""The function state machine: what an update or a create ends in, and what invokes run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lamina.assignment import NoCapacity
from lamina.clock import FakeClock
from lamina.frontend import lifecycle
from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import ResourceConflict
from lamina.frontend.qualifiers import Target, runnable
from lamina.frontend.shapes import Scope
from lamina.registry.model import FunctionConfig
from lamina.registry.store import Registry


class FakeFleet:
    def __init__(self, runtimes: dict[str, str]) -> None:
        self._runtimes = runtimes

    def runtimes(self) -> dict[str, str]:
        return self._runtimes


class FakeAssignment:
    """Records what the lifecycle asks of assignment; `refuse` makes every prewarm fail."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.prewarmed: list[FunctionConfig] = []
        self.retired: list[tuple[str, Any, Any]] = []

    async def prewarm(self, config: FunctionConfig) -> bool:
        if self.refuse:
            raise NoCapacity("no worker has 128 MB free")
        self.prewarmed.append(config)
        return True

    def retire(self, function: str, keep: Any = None, version: Any = None) -> None:
        self.retired.append((function, keep, version))


def context(tmp_path: Path, assignment: FakeAssignment, runtimes: dict[str, str]) -> Any:
    return FrontendContext(
        scope=Scope("us-east-1", "000000000000"),
        registry=Registry(tmp_path / "r.db"),
        code=None,  # type: ignore[arg-type]
        counting=None,  # type: ignore[arg-type]
        assignment=assignment,  # type: ignore[arg-type]
        fleet=FakeFleet(runtimes),  # type: ignore[arg-type]
        events=None,  # type: ignore[arg-type]
        logs=None,  # type: ignore[arg-type]
        clock=FakeClock(),
        public_url="http://127.0.0.1:1",
        verifier=None,  # type: ignore[arg-type]
        pools=None,  # type: ignore[arg-type]
        platform=None,  # type: ignore[arg-type]
    )


def active(sha: str = "a" * 64) -> FunctionConfig:
    return FunctionConfig(
        name="fn", runtime="python3.11", handler="index.handler", role="arn:role",
        code_sha256=sha, code_size=1, revision_id="r1", last_modified="t1",
        **lifecycle.READY,
    )  # fmt: skip


def update_code(ctx: Any) -> FunctionConfig:
    before = ctx.registry.require("fn")
    updated = lifecycle.begin_update(ctx, before, "t2", code_sha256="b" * 64)
    asyncio.run(lifecycle.activate(ctx, updated, prewarm=True))
    return ctx.registry.require("fn")


def test_while_an_update_is_in_progress_invokes_run_the_previous_code_and_updates_are_409(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path, FakeAssignment(), {"python3.11": "Python 3.11"})
    ctx.registry.create(active())

    updated = lifecycle.begin_update(ctx, active(), "t2", code_sha256="b" * 64)

    assert updated.last_update_status == "InProgress"
    assert runnable(ctx, Target(updated, None), lambda: 0.0).code_sha256 == "a" * 64
    with pytest.raises(ResourceConflict):
        lifecycle.check_updatable(ctx, updated, None)


def test_a_finished_update_runs_the_new_code_in_the_sandbox_it_warmed(tmp_path: Path) -> None:
    assignment = FakeAssignment()
    ctx = context(tmp_path, assignment, {"python3.11": "Python 3.11"})
    ctx.registry.create(active())

    finished = update_code(ctx)

    assert finished.last_update_status == "Successful"
    assert runnable(ctx, Target(finished, None), lambda: 0.0).code_sha256 == "b" * 64
    assert [c.revision_id for c in assignment.prewarmed] == [finished.revision_id]
    key = finished.key
    assert assignment.retired == [(key, (key, "$LATEST", finished.revision_id), "$LATEST")]


def test_an_update_no_worker_can_start_fails_and_invokes_keep_the_previous_code(
    tmp_path: Path,
) -> None:
    ctx = context(tmp_path, FakeAssignment(refuse=True), {"python3.11": "Python 3.11"})
    ctx.registry.create(active())

    failed = update_code(ctx)

    assert (failed.state, failed.last_update_status) == ("Active", "Failed")
    assert failed.last_update_status_reason_code == "InsufficientCapacity"
    assert runnable(ctx, Target(failed, None), lambda: 0.0).code_sha256 == "a" * 64
    lifecycle.check_updatable(ctx, failed, None)  # a failed update does not block the next


def test_a_create_whose_runtime_no_worker_has_fails(tmp_path: Path) -> None:
    ctx = context(tmp_path, FakeAssignment(), {})
    pending = active().replace(state="Pending", last_update_status=None)
    ctx.registry.create(pending)

    asyncio.run(lifecycle.activate(ctx, pending, prewarm=False))

    failed = ctx.registry.require("fn")
    assert (failed.state, failed.state_reason_code) == ("Failed", "InvalidRuntime")
