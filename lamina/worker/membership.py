"""How a worker stays in the fleet: it registers with the frontend and renews its lease.

Every renewal is the whole registration again, so a frontend that restarted, or that gave the
worker up while it was cut off, simply admits it anew. A renewal lists the worker's idle
sandboxes; the frontend answers with those it has forgotten (it gave the worker up meanwhile),
and the worker destroys them rather than hold their memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

REGISTER_PATH = "/_lamina/v1/workers"
# Until the frontend says how often to renew, and after a failed attempt, try this often.
RETRY_S = 0.5
_TIMEOUT = aiohttp.ClientTimeout(total=2.0)


async def keep_membership(
    session: aiohttp.ClientSession,
    join_url: str,
    describe: Callable[[], dict[str, Any]],
    reclaim: Callable[[list[str]], Awaitable[None]],
    joined: asyncio.Event,
) -> None:
    """Register, then renew for as long as the worker runs; `joined` is set once admitted."""
    url = f"{join_url.rstrip('/')}{REGISTER_PATH}"
    while True:
        delay = RETRY_S
        try:
            reply = await _register(session, url, describe())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("cannot reach the frontend at %s: %s", url, exc)
        else:
            if reply is not None:
                if reply["orphans"]:
                    log.warning("sandboxes the frontend forgot: %s", ",".join(reply["orphans"]))
                    await reclaim(list(reply["orphans"]))
                joined.set()
                delay = float(reply["renew_s"])
        await asyncio.sleep(delay)


async def _register(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> dict[str, Any] | None:
    async with session.post(url, json=body, timeout=_TIMEOUT) as response:
        if response.status != 200:
            log.warning("registration refused (%d): %s", response.status, await response.text())
            return None
        reply: dict[str, Any] = await response.json()
        return reply
