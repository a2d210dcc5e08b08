"""What one call to a worker costs by how it connects: fresh TCP, fresh Unix socket, pooled TCP.

    .venv/bin/python bench/connection_cost.py [--requests 300] [--rounds 10]

An aiohttp server answering `null` and aiohttp clients in one process (so the CPU counted is
both ends of each call), on uvloop as Lamina runs: a fresh loopback TCP connection per call
(how the frontend calls a worker on another host), a fresh Unix socket connection per call (a
worker `lamina up` started), and a pooled TCP connection (what the frontend does not do, since
a pooled connection to a dead worker could swallow an event). Rounds alternate between the
three; each figure is the median over rounds of the wall and CPU µs per call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import uvloop
from aiohttp import web
from suite import commit, machine, table


async def reply(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"null", content_type="application/json")


async def calls(session: aiohttp.ClientSession, url: str, count: int) -> tuple[float, float]:
    """`count` sequential calls: (wall µs, CPU µs) per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        async with session.post(url, data=b"{}") as response:
            await response.read()
    return (
        (time.perf_counter() - wall) / count * 1e6,
        (time.process_time() - cpu) / count * 1e6,
    )


async def measure(requests: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    app = web.Application()
    app.router.add_post("/call", reply)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    socket = Path(tempfile.mkdtemp(prefix="lamina-bench-")) / "api.sock"
    await web.UnixSite(runner, str(socket)).start()

    tcp_url = f"http://127.0.0.1:{port}/call"
    ways = {
        "fresh TCP connection": (aiohttp.TCPConnector(limit=0, force_close=True), tcp_url),
        "fresh Unix socket connection": (
            aiohttp.UnixConnector(str(socket), limit=0, force_close=True),
            "http://worker/call",
        ),
        "pooled TCP connection": (aiohttp.TCPConnector(limit=0), tcp_url),
    }
    sessions = {label: aiohttp.ClientSession(connector=c) for label, (c, _) in ways.items()}
    found: dict[str, list[tuple[float, float]]] = {label: [] for label in ways}
    try:
        for label, (_, url) in ways.items():
            await calls(sessions[label], url, 50)  # warm up
        for _ in range(rounds):
            for label, (_, url) in ways.items():
                found[label].append(await calls(sessions[label], url, requests))
    finally:
        for session in sessions.values():
            await session.close()
        await runner.cleanup()
        socket.unlink(missing_ok=True)
        socket.parent.rmdir()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    found = uvloop.run(measure(args.requests, args.rounds))
    rows = [
        [label, f"{statistics.median(w for w, _ in runs):.0f}",
         f"{statistics.median(c for _, c in runs):.0f}"]
        for label, runs in found.items()
    ]  # fmt: skip
    print(f"{args.rounds} alternating rounds of {args.requests} sequential calls; medians")
    print(table(["a call over", "wall µs per call", "CPU µs per call (both ends)"], rows))


if __name__ == "__main__":
    main()
