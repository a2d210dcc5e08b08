"""The event queue as the rest of Lamina uses it: accept events, lease them, settle them.

Accepting is a group commit: requests that arrive while a transaction is being synced wait for
the next one together, so one fsync covers many 202s and none is answered before its event is
on disk. Every write runs on one writer thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lamina.clock import Clock
from lamina.eventqueue.model import InvokeConfig, QueuedEvent, QueueSnapshot, default_config
from lamina.eventqueue.store import EventStore

log = logging.getLogger(__name__)

T = TypeVar("T")
LATEST = "$LATEST"


@dataclass
class _Batch:
    events: list[QueuedEvent] = field(default_factory=list)
    done: asyncio.Future[None] | None = None


class EventQueue:
    def __init__(self, store: EventStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.arrived = asyncio.Event()  # set on every accept, so pollers need not wait
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="eventqueue-writer")
        self._batch: _Batch | None = None
        self._commits = asyncio.Lock()
        self._committing: set[asyncio.Task[None]] = set()
        self._configs = {(c.function, c.qualifier): c for c in store.configs()}

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.store.close()

    async def call(self, method: Callable[..., T], *args: Any) -> T:
        """Run a store method on the writer thread."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, method, *args)

    # Accepting

    async def accept(
        self,
        *,
        request_id: str,
        function: str,
        function_arn: str,
        invoked_arn: str,
        payload: bytes,
        trace_id: str,
    ) -> None:
        """Keep one event durably; returns once it is on disk."""
        now = self.clock.time()
        await self.enqueue(
            QueuedEvent(
                request_id, function, function_arn, invoked_arn, payload, trace_id, now, now
            )
        )

    async def enqueue(self, event: QueuedEvent) -> None:
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = _Batch(done=loop.create_future())
            task = loop.create_task(self._commit(batch))
            self._committing.add(task)
            task.add_done_callback(self._committing.discard)
        batch.events.append(event)
        assert batch.done is not None
        await asyncio.shield(batch.done)

    async def _commit(self, batch: _Batch) -> None:
        assert batch.done is not None
        async with self._commits:
            # Close the batch only now: whatever arrived while the last commit synced joins it.
            if self._batch is batch:
                self._batch = None
            try:
                await self.call(self.store.insert_many, batch.events)
            except Exception as exc:
                log.exception("events not kept count=%d", len(batch.events))
                batch.done.set_exception(exc)
                return
        batch.done.set_result(None)
        self.arrived.set()

    # Invoke configs: read on every attempt, so kept in memory and written through.

    def config(self, function: str, qualifier: str = LATEST) -> InvokeConfig:
        found = self._configs.get((function, qualifier))
        return found if found is not None else default_config(function, qualifier)

    def find_config(self, function: str, qualifier: str) -> InvokeConfig | None:
        return self._configs.get((function, qualifier))

    def configs_of(self, function: str) -> list[InvokeConfig]:
        return sorted(
            (c for c in self._configs.values() if c.function == function),
            key=lambda c: c.qualifier,
        )

    async def put_config(self, config: InvokeConfig) -> None:
        await self.call(self.store.put_config, config)
        self._configs[(config.function, config.qualifier)] = config

    async def delete_config(self, function: str, qualifier: str) -> None:
        await self.call(self.store.delete_config, function, qualifier)
        self._configs.pop((function, qualifier), None)

    async def forget(self, function: str) -> None:
        """The function was deleted: drop its queued events and configs."""
        await self.call(self.store.forget, function)
        for key in [k for k in self._configs if k[0] == function]:
            del self._configs[key]

    async def snapshot(self) -> QueueSnapshot:
        return await self.call(self.store.snapshot, self.clock.time())
