"""What the frontend's handlers work with: the other parts of Lamina, wired once at start.

A request is served with its account's context (`for_account`): ARNs name that account, and
the registry, counting pool and logs it sees are that account's alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from lamina.assignment import AssignmentService
from lamina.auth import Verifier
from lamina.auth.platform import PlatformAuth
from lamina.clock import Clock
from lamina.counting import CountingPools, CountingService
from lamina.eventqueue import EventQueue
from lamina.frontend.shapes import Scope
from lamina.logs.store import LogStore
from lamina.placement.fleet import Fleet
from lamina.registry.code import CodeStore
from lamina.registry.store import Registry
from lamina.tenancy import FunctionKey

log = logging.getLogger(__name__)


@dataclass
class FrontendContext:
    scope: Scope
    registry: Registry
    code: CodeStore
    counting: CountingService
    assignment: AssignmentService
    fleet: Fleet
    events: EventQueue
    clock: Clock
    public_url: str
    logs: LogStore
    verifier: Verifier
    # Every account's counting service; `counting` is the one of this context's account.
    pools: CountingPools
    # Who may use Lamina's own endpoints, and the code links GetFunction hands out.
    platform: PlatformAuth
    # The random source of weighted alias routing: a number in [0, 1) per invoke.
    draw: Callable[[], float] = random.random
    # Provisioned configurations (account, function, qualifier) being filled, each with its
    # wake-up.
    provisioning: dict[tuple[str, str, str], asyncio.Event] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def key(self, name: str) -> FunctionKey:
        """The key of this account's function `name`."""
        return FunctionKey.of(self.scope.account_id, name)

    def for_account(self, account_id: str) -> FrontendContext:
        """The context of `account_id`'s requests, sharing everything that is not per account."""
        if account_id == self.scope.account_id:
            return self
        return dataclasses.replace(
            self,
            scope=Scope(self.scope.region, account_id),
            registry=self.registry.for_account(account_id),
            counting=self.pools.for_account(account_id),
            logs=self.logs.for_account(account_id),
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run work after the answer is sent, keeping a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed name=%s", task.get_name(), exc_info=task.exception())

    async def cancel(self) -> None:
        """Stop background work, for a stop that must not let it see the workers go away."""
        for task in list(self._tasks):
            task.cancel()
        await self.drain()

    async def drain(self) -> None:
        """Wait for background work, for a clean stop."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
