"""How a worker stays in the fleet: it registers with the frontend and renews its lease.

Every renewal is the whole registration again, so a frontend that restarted, or that gave the
worker up while it was cut off, simply admits it anew. A renewal lists the worker's idle
sandboxes; the frontend answers with those it has forgotten (it gave the worker up meanwhile),
and the worker destroys them rather than hold their memory.

Renewals go out from a thread of their own with its own event loop. The worker's main loop
stalls for seconds under a burst (every sandbox start forks the worker, and a loop turn may
start a hundred); renewals sent from it stopped for as long, and the frontend gave up a worker
that was only busy. The thread renews what the main loop last published, and stops renewing
once the main loop has published nothing for `STALL_LIMIT_S`: a wedged worker still leaves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from lamina.auth.platform import TOKEN_HEADER
from lamina.clock import Clock

log = logging.getLogger(__name__)

REGISTER_PATH = "/_lamina/v1/workers"
# Until the frontend says how often to renew, and after a failed attempt, try this often.
RETRY_S = 0.5
# A main loop silent for this long is taken for wedged, not busy: renewals stop.
STALL_LIMIT_S = 30.0
_TIMEOUT = aiohttp.ClientTimeout(total=2.0)

Describe = Callable[[], dict[str, Any] | None]


class Published:
    """The registration the main loop last published, read by the renewing thread.

    Replacing one reference is atomic, so neither side locks; the main loop's sandbox table is
    never read from the other thread.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._document: dict[str, Any] | None = None
        self._at = 0.0

    def publish(self, document: dict[str, Any]) -> None:
        self._document, self._at = document, self._clock.monotonic()

    def current(self) -> dict[str, Any] | None:
        """The registration to send, or None while there is none or it is too old to vouch
        for a live worker."""
        if self._document is None or self._clock.monotonic() - self._at > STALL_LIMIT_S:
            return None
        return self._document


async def keep_membership(
    session: aiohttp.ClientSession,
    join_url: str,
    describe: Describe,
    reclaim: Callable[[list[str]], Awaitable[None]],
    joined: Callable[[], None],
) -> None:
    """Register, then renew for as long as the worker runs; `joined` is called each time the
    frontend admits or renews it. `describe` returning None skips a renewal."""
    url = f"{join_url.rstrip('/')}{REGISTER_PATH}"
    while True:
        delay = RETRY_S
        body = describe()
        if body is None:
            log.warning("the worker's loop is silent beyond %.0f s: not renewing", STALL_LIMIT_S)
        else:
            delay = await _renew(session, url, body, reclaim, joined)
        await asyncio.sleep(delay)


async def _renew(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    reclaim: Callable[[list[str]], Awaitable[None]],
    joined: Callable[[], None],
) -> float:
    """One registration; returns how long to wait before the next."""
    try:
        reply = await _register(session, url, body)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        log.warning("cannot reach the frontend at %s: %s", url, exc)
        return RETRY_S
    if reply is None:
        return RETRY_S
    if reply["orphans"]:
        log.warning("sandboxes the frontend forgot: %s", ",".join(reply["orphans"]))
        await reclaim(list(reply["orphans"]))
    joined()
    return float(reply["renew_s"])


async def publish_every(
    published: Published, describe: Callable[[], dict[str, Any]], period_s: float
) -> None:
    """Publish the worker's registration from its main loop, every `period_s` it gets to."""
    while True:
        published.publish(describe())
        await asyncio.sleep(period_s)


async def _register(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    async with session.post(url, json=body, timeout=_TIMEOUT) as response:
        if response.status != 200:
            log.warning("registration refused (%d): %s", response.status, await response.text())
            return None
        reply: dict[str, Any] = await response.json()
        return reply


class MembershipThread:
    """Keeps the worker's membership from a thread of its own (see the module's docstring).

    Orphans the frontend names are destroyed on the main loop, which owns the sandboxes.
    """

    def __init__(
        self,
        join_url: str,
        token: str,
        published: Published,
        reclaim: Callable[[list[str]], Awaitable[None]],
        joined: asyncio.Event,
    ) -> None:
        self._join_url = join_url
        self._token = token
        self._published = published
        self._reclaim = reclaim
        self._joined = joined
        self._main = asyncio.get_running_loop()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        # A daemon: a worker that exits never waits on a renewal in flight.
        self._thread = threading.Thread(target=self._run, name="membership", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        """Stop renewing; the lease then runs out unless the worker left the fleet anyway."""
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._task = loop.create_task(self._keep())
            self._started.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            self._started.set()
            loop.close()

    async def _keep(self) -> None:
        async with aiohttp.ClientSession(headers={TOKEN_HEADER: self._token}) as session:
            await keep_membership(
                session, self._join_url, self._published.current, self._hand_back, self._admitted
            )

    async def _hand_back(self, orphans: list[str]) -> None:
        # Not awaited: destroying them waits on the main loop, which may be busy.
        asyncio.run_coroutine_threadsafe(self._reclaim(orphans), self._main)

    def _admitted(self) -> None:
        self._main.call_soon_threadsafe(self._joined.set)
