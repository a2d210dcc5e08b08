"""Keeping the workers `lamina up` started running: one that exits unasked starts again.

A `Supervisor` owns one worker's process. It starts it, waits for it to exit, and starts it
again after a `RestartBackoff` delay, so a worker that cannot start is retried ever more
slowly instead of spinning. Stopping is cancelling its `run`: a cancelled supervisor starts
nothing more and leaves the process it holds to whoever stops the platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from lamina.clock import Clock

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
LONGEST_DELAY_S = 30.0
# A worker that stayed up this long is taken to be well again: its next exit restarts fast.
STEADY_S = 60.0


class Child(Protocol):
    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...


C = TypeVar("C", bound=Child)


class RestartBackoff:
    """How long to wait before starting a process again: doubling from `first_s` to
    `longest_s` over exits in a row, back to `first_s` once it has stayed up `steady_s`."""

    def __init__(
        self,
        clock: Clock,
        first_s: float = FIRST_DELAY_S,
        longest_s: float = LONGEST_DELAY_S,
        steady_s: float = STEADY_S,
    ) -> None:
        self._clock = clock
        self._first_s = first_s
        self._longest_s = longest_s
        self._steady_s = steady_s
        self._delay_s = first_s
        self._up_since: float | None = None

    def started(self) -> None:
        """The process is up and ready."""
        self._up_since = self._clock.monotonic()

    def next_delay(self) -> float:
        """The wait before the next start, after an exit or a start that failed."""
        up_since = self._up_since
        if up_since is not None and self._clock.monotonic() - up_since >= self._steady_s:
            self._delay_s = self._first_s
        self._up_since = None
        delay = self._delay_s
        self._delay_s = min(self._delay_s * 2, self._longest_s)
        return delay


class Supervisor(Generic[C]):
    """Keeps the process `spawn` starts running; `ready` returns once a started one serves
    and raises when it never will."""

    def __init__(
        self,
        name: str,
        spawn: Callable[[], Awaitable[C]],
        ready: Callable[[C], Awaitable[None]],
        clock: Clock,
        backoff: RestartBackoff | None = None,
    ) -> None:
        self.name = name
        self._spawn = spawn
        self._ready = ready
        self._clock = clock
        self._backoff = backoff or RestartBackoff(clock)
        self.process: C | None = None
        self.up = False
        self.restarts = 0

    async def start(self) -> None:
        """Start the process once; its failure to get ready is the caller's to handle."""
        self.process = await self._spawn()
        await self._ready(self.process)
        self._became_ready()

    async def run(self) -> None:
        """Start the process again each time it exits, until cancelled."""
        assert self.process is not None, "start the process before supervising it"
        while True:
            code = await self.process.wait()
            self.up = False
            log.warning("worker exited id=%s code=%s: starting it again", self.name, code)
            await self._restart()

    async def _restart(self) -> None:
        # Each failed start waits longer, so one that cannot start does not spin.
        while True:
            delay = self._backoff.next_delay()
            log.info("worker restart id=%s in %.1fs", self.name, delay)
            await self._clock.sleep(delay)
            self.process = await self._spawn()
            self.restarts += 1
            try:
                await self._ready(self.process)
            except (RuntimeError, TimeoutError, OSError, ValueError) as error:
                log.error("worker did not start again id=%s: %s", self.name, error)
                await self._end(self.process)
                continue
            self._became_ready()
            log.info("worker started again id=%s restarts=%d", self.name, self.restarts)
            return

    def _became_ready(self) -> None:
        self.up = True
        self._backoff.started()

    @staticmethod
    async def _end(process: C) -> None:
        """Kill a process that never became ready, and reap it."""
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()


async def stop_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel supervisors' `run` tasks and wait for them, so none starts a process after."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
