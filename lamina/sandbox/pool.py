"""Blank sandboxes started ahead of need, so that a cold start only has to assign one.

A blank sandbox holds no function and no tenant data: its runtime has started and waits for a
function (see `launch.py`). The pool keeps `size` of them for each key it was asked for
recently, a key being what must be fixed before a sandbox starts (the interpreter, the size
of /tmp, the network mode, connected before the runtime starts, and the isolation backend).
Taking one starts a replacement in the background, one launch at a time so a refill never
competes with the invokes it serves for more than one core. Blanks are no function's
sandboxes: nothing counts them as such, and they die when the pool closes.

The pool does not know how a sandbox is made: an isolation backend supplies blanks through
`BlankSource`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from lamina.sandbox.backend import NAMESPACE
from lamina.sandbox.launch import Launch
from lamina.sandbox.network import NetworkMode

log = logging.getLogger(__name__)

DEFAULT_SIZE = 2
# Keys beyond this many, least recently asked for first, lose their blanks.
DEFAULT_MAX_KEYS = 4

# Variables that the C library, the dynamic loader or the interpreter read as a process starts.
# A blank started before the function was known saw the platform's values of these; a function
# that sets other values starts cold, so that it runs exactly as it would have.
_STARTUP_PREFIXES = ("LD_", "LC_", "MALLOC_", "GLIBC_", "LANG", "TZ")


@dataclass(frozen=True)
class PoolKey:
    """What must be fixed before a sandbox starts."""

    executable: str  # the interpreter, on the host
    tmp_size_mb: int
    network: NetworkMode = NetworkMode.OUTBOUND
    # The isolation backend: a function is only ever given a blank of its own backend.
    isolation: str = NAMESPACE


@dataclass
class Blank:
    blank_id: str
    key: PoolKey
    launch: Launch
    ready: bool = False
    # Set once the blank is ready, or died before it was.
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class BlankSource(Protocol):
    """An isolation backend's side of the pool."""

    async def start_blank(self, key: PoolKey) -> Blank: ...

    def discard(self, blank: Blank) -> None:
        """Kill a blank that will never be assigned and remove what it leaves behind."""


def startup_matches(blank_env: dict[str, str], env: dict[str, str]) -> bool:
    """Whether a sandbox started with `blank_env` started as one started with `env` would."""
    names = {n for n in (*blank_env, *env) if n.startswith(_STARTUP_PREFIXES)}
    return all(blank_env.get(name) == env.get(name) for name in names)


class SandboxPool:
    def __init__(
        self, source: BlankSource, size: int = DEFAULT_SIZE, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if size < 0 or max_keys < 1:
            raise ValueError(f"a pool of {size} blanks for {max_keys} keys")
        self.size = size
        self._source = source
        self._max_keys = max_keys
        self._blanks: dict[PoolKey, list[Blank]] = {}
        self._wanted: OrderedDict[PoolKey, None] = OrderedDict()
        self._refills: dict[PoolKey, asyncio.Task[None]] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def counts(self) -> dict[PoolKey, int]:
        return {key: len(blanks) for key, blanks in self._blanks.items() if blanks}

    def ready_by_mode(self) -> dict[str, int]:
        """Blanks whose runtime waits for its function, by `isolation/network`."""
        found: dict[str, int] = {}
        for key, blanks in self._blanks.items():
            label = f"{key.isolation}/{key.network.value}"
            found[label] = found.get(label, 0) + sum(blank.ready for blank in blanks)
        return found

    def replenish(self, key: PoolKey) -> None:
        """Start blanks of `key` until it has its share again (in the background)."""
        self._want(key)

    def take(self, key: PoolKey) -> Blank | None:
        """A live blank of `key`, which leaves the pool for good, or None (a cold start).

        The caller calls `replenish` once the sandbox it starts is ready, so the replacement
        does not compete with that start for a core.
        """
        blanks = self._blanks.get(key, [])
        # The oldest first: it is the likeliest to be ready.
        while blanks:
            blank = blanks.pop(0)
            if blank.launch.process.returncode is None:
                log.debug("blank taken id=%s ready=%s", blank.blank_id, blank.ready)
                return blank
            self._source.discard(blank)
        return None

    async def close(self) -> None:
        """Stop refilling and kill every blank."""
        self._closed = True
        # A refill is not cancelled: one cut inside a launch would lose track of its process.
        # It ends after its current launch, which goes with the others below.
        await asyncio.gather(*self._refills.values(), return_exceptions=True)
        watches = list(self._watches.values())
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
        for blanks in self._blanks.values():
            for blank in blanks:
                self._source.discard(blank)
            for blank in blanks:
                await blank.launch.process.wait()
        self._blanks.clear()

    def _want(self, key: PoolKey) -> None:
        if self._closed or self.size == 0:
            return
        self._wanted[key] = None
        self._wanted.move_to_end(key)
        while len(self._wanted) > self._max_keys:
            dropped, _ = self._wanted.popitem(last=False)
            for blank in self._blanks.pop(dropped, []):
                self._discard(blank)
        self._refill_soon(key)

    def _refill_soon(self, key: PoolKey) -> None:
        running = self._refills.get(key)
        if running is None or running.done():
            self._refills[key] = asyncio.get_running_loop().create_task(
                self._refill(key), name=f"pool-refill-{_label(key)}"
            )

    async def _refill(self, key: PoolKey) -> None:
        blanks = self._blanks.setdefault(key, [])
        while key in self._wanted and len(blanks) < self.size and not self._closed:
            try:
                blank = await self._source.start_blank(key)
            except Exception:
                log.exception("blank sandbox failed to start key=%s", key)
                return
            blanks.append(blank)
            self._watches[blank.blank_id] = asyncio.get_running_loop().create_task(
                self._watch(blank), name=f"pool-watch-{blank.blank_id}"
            )
            await blank.settled.wait()
            if not blank.ready:
                # A blank that cannot start would fail again: the next take tries anew.
                log.warning("blank sandbox died before it was ready key=%s", key)
                return
        log.debug("pool filled key=%s blanks=%d", key, len(blanks))

    async def _watch(self, blank: Blank) -> None:
        """Follow one blank for its whole life, also once taken: it holds its channel open."""
        try:
            blank.ready = await blank.launch.wait_ready()
            blank.settled.set()
            if blank.ready:
                await blank.launch.process.wait()
        finally:
            blank.settled.set()
            self._watches.pop(blank.blank_id, None)
            # After the reader that waited for "ready" is gone (it goes on the next turn).
            asyncio.get_running_loop().call_soon(blank.launch.close_channel)
        if self._remove(blank) and blank.ready:
            log.info(
                "blank sandbox exited id=%s code=%s",
                blank.blank_id,
                blank.launch.process.returncode,
            )
            self._refill_soon(blank.key)

    def _remove(self, blank: Blank) -> bool:
        blanks = self._blanks.get(blank.key, [])
        if blank not in blanks:
            return False
        blanks.remove(blank)
        self._discard(blank)
        return True

    def _discard(self, blank: Blank) -> None:
        watch = self._watches.pop(blank.blank_id, None)
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        self._source.discard(blank)


def _label(key: PoolKey) -> str:
    return f"{key.isolation}-{key.tmp_size_mb}-{key.network.value}"
