"""Invokes waiting for a sandbox, and the running starts a wait is judged by.

Two kinds of invoke wait here, in one queue per version, oldest first:

- one that found every sandbox of its version busy or starting waits briefly for one of them
  to be handed straight to it as it frees;
- one that placement could fit nowhere, every worker being full, waits for such a hand-over
  or for room on some worker (a sandbox gone, or idle and so evictable), up to its deadline.

Each waiter is a future: a hand-over sets it to the sandbox, a room wake sets it to None so
the invoke tries placement again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, Protocol, TypeVar


class Keyed(Protocol):
    """A sandbox as the queues see it: the version key it serves."""

    @property
    def key(self) -> Hashable: ...


class Starting(Protocol):
    """A sandbox as the start tracker sees it: when it began and whether it is still starting."""

    @property
    def created_at(self) -> float: ...

    @property
    def initialising(self) -> bool: ...


R = TypeVar("R", bound=Keyed)
S = TypeVar("S", bound=Starting)


class Waiters(Generic[R]):
    """The queues of waiting invokes: per version for hand-overs, one for room."""

    def __init__(self) -> None:
        self._by_key: dict[Hashable, deque[asyncio.Future[R | None]]] = {}
        # Waiters for room with the memory (MB) a new sandbox of theirs needs, oldest first.
        self._for_room: deque[tuple[int, asyncio.Future[R | None]]] = deque()

    def join(self, key: Hashable, room_mb: int | None = None) -> asyncio.Future[R | None]:
        """Queue for a hand-over of `key`, and for room of `room_mb` MB when it is given."""
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._by_key.setdefault(key, deque()).append(future)
        if room_mb is not None:
            self._for_room.append((room_mb, future))
        return future

    def leave(self, key: Hashable, future: asyncio.Future[R | None]) -> None:
        """Take a waiter out of its version's queue; the room queue drops it lazily."""
        waiters = self._by_key.get(key)
        if waiters is None:
            return
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            del self._by_key[key]

    def of(self, key: Hashable) -> int:
        return len(self._by_key.get(key, ()))

    def total(self) -> int:
        return sum(len(waiters) for waiters in self._by_key.values())

    def hand_over(self, record: R) -> bool:
        """Give a released sandbox to the oldest invoke still waiting for its version."""
        waiters = self._by_key.get(record.key)
        while waiters:
            handed = waiters.popleft()
            if not handed.done():
                handed.set_result(record)
                return True
        return False

    @property
    def want_room(self) -> bool:
        """Whether some invoke still waits for room on a worker."""
        while self._for_room and self._for_room[0][1].done():
            self._for_room.popleft()
        return bool(self._for_room)

    def wake_for_room(self, available_mb: Iterable[int]) -> int:
        """Wake, oldest first, the waiters whose sandbox fits in what workers have available.

        `available_mb` is each placeable worker's free memory plus its idle sandboxes'.
        Each woken waiter is counted against the roomiest worker, so one freed sandbox does
        not wake every waiter. Returns how many were woken.
        """
        room = sorted(available_mb, reverse=True)
        woken = 0
        kept: deque[tuple[int, asyncio.Future[R | None]]] = deque()
        for need, future in self._for_room:
            if future.done():
                continue
            if room and room[0] >= need:
                room[0] -= need
                room.sort(reverse=True)
                future.set_result(None)
                woken += 1
            else:
                kept.append((need, future))
        self._for_room = kept
        return woken


class StartTracker(Generic[S]):
    """The oldest start in progress per function, in constant amortised time.

    Starts are noted in the order they begin, which on a monotonic clock is the order of
    `created_at`, so the oldest one still starting is the first of its queue once the starts
    that ended are dropped from the front.
    """

    def __init__(self) -> None:
        self._starts: dict[str, deque[S]] = {}

    def began(self, function: str, record: S) -> None:
        starts = self._starts.setdefault(function, deque())
        # Pruned here too, so a function no invoke ever waits for keeps no ended starts.
        _drop_ended(starts)
        starts.append(record)

    def oldest(self, function: str) -> float | None:
        """When the longest-running start of `function` still in progress began, if any."""
        starts = self._starts.get(function)
        if starts is not None:
            _drop_ended(starts)
        if not starts:
            self._starts.pop(function, None)
            return None
        return starts[0].created_at


def _drop_ended(starts: deque[S]) -> None:
    while starts and not starts[0].initialising:
        starts.popleft()
