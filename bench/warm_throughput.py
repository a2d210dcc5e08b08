"""Warm invoke throughput: closed loops at fixed client counts, open loops at fixed rates.

    .venv/bin/python bench/warm_throughput.py [--clients 1 8 32 128] [--rates 1000 2000]
        [--seconds 5] [--runs 3] [--pin]

Starts Lamina (default configuration) with a no-op Python function, and a bare aiohttp server
answering `null` as the baseline, and measures both in the same run with the same load
generator (aiohttp on uvloop, one process):

- closed loop: C clients, each sending its next invoke when the last one answered;
- open loop: invokes sent at Poisson arrivals of a fixed mean rate whatever is outstanding,
  each one's latency counted from its scheduled time, so a stall is not hidden (no
  coordinated omission).

Each point is run `--runs` times, alternating baseline and Lamina; the figure is the median
over runs. Printed with each: the CPU seconds per invoke of Lamina's processes (frontend,
worker, sandbox) and of the load generator itself. Requests are signed with SigV4 and every
one is verified; a signature is reused for identical requests for up to a minute, as a client
may (AWS accepts it for five), so that signing does not dominate the load generator.
`--pin` puts the load generator on the last core and Lamina on the others.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import uvloop
from suite import (
    Figure,
    baseline,
    commit,
    cpu_seconds,
    lamina,
    machine,
    own_cpu_seconds,
    pin_self,
    split_cpus,
    table,
)
from warm_invoke import INVOKE_PATH, create_noop, signed

RESIGN_S = 60.0
# An invoke not answered within this counts as an error (an overloaded platform may stall).
TIMEOUT = aiohttp.ClientTimeout(total=60)


class Signer:
    """Signed headers for one request, renewed every minute."""

    def __init__(self, port: int, path: str, body: bytes, sign: bool) -> None:
        self._args = (port, "POST", path, body)
        self._sign = sign
        self._headers: dict[str, str] = {}
        self._at = float("-inf")

    def headers(self) -> dict[str, str]:
        if self._sign and time.monotonic() - self._at > RESIGN_S:
            self._headers, self._at = signed(*self._args), time.monotonic()
        return self._headers


@dataclass
class Run:
    invokes: int = 0
    errors: int = 0
    # Each failure by kind: Lambda's error type, the HTTP status, or the client's exception.
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    target_cpu_s: float = 0.0
    generator_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.invokes / self.seconds if self.seconds else 0.0


class Target:
    """Where invokes go, and which processes' CPU they cost."""

    def __init__(self, port: int, path: str, pids: Callable[[], list[int]], sign: bool) -> None:
        self.url = f"http://127.0.0.1:{port}{path}"
        self.signer = Signer(port, path, b"{}", sign)
        self.pids = pids


async def _one(session: aiohttp.ClientSession, target: Target, run: Run, since: float) -> None:
    kind = None
    try:
        async with session.post(target.url, data=b"{}", headers=target.signer.headers()) as reply:
            await reply.read()
            if reply.status != 200:
                kind = reply.headers.get("X-Amzn-ErrorType", str(reply.status))
            elif "X-Amz-Function-Error" in reply.headers:
                kind = "function error"
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind = type(exc).__name__
    run.latencies_ms.append((time.perf_counter() - since) * 1000)
    run.invokes += kind is None
    run.errors += kind is not None
    if kind is not None:
        run.kinds[kind] += 1


async def closed_loop(target: Target, clients: int, seconds: float) -> Run:
    run = Run()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < deadline:
                await _one(session, target, run, time.perf_counter())

        await _measured(run, target, asyncio.gather(*(client() for _ in range(clients))))
    return run


async def open_loop(target: Target, rate: float, seconds: float, seed: int) -> Run:
    """Poisson arrivals at `rate`/s for `seconds`; latency from each scheduled arrival."""
    run = Run()
    draw = random.Random(seed)
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        loop = asyncio.get_running_loop()

        async def arrivals() -> None:
            pending: set[asyncio.Task[None]] = set()
            began = time.perf_counter()
            due = 0.0
            while due < seconds:
                due += draw.expovariate(rate)
                wait = began + due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                task = loop.create_task(_one(session, target, run, began + due))
                pending.add(task)
                task.add_done_callback(pending.discard)
            await asyncio.gather(*pending)

        await _measured(run, target, arrivals())
    return run


async def _measured(run: Run, target: Target, work: asyncio.Future[object] | object) -> None:
    cpu_before, own_before = cpu_seconds(target.pids()), own_cpu_seconds()
    started = time.perf_counter()
    await work  # type: ignore[misc]
    run.seconds = time.perf_counter() - started
    run.target_cpu_s = cpu_seconds(target.pids()) - cpu_before
    run.generator_cpu_s = own_cpu_seconds() - own_before


def per_invoke_us(runs: list[Run], attribute: str) -> float:
    return statistics.median(getattr(r, attribute) / max(r.invokes, 1) * 1e6 for r in runs)


def _errors(runs: list[Run]) -> str:
    kinds: collections.Counter[str] = collections.Counter()
    for run in runs:
        kinds.update(run.kinds)
    return ", ".join(f"{kind}: {count}" for kind, count in kinds.most_common()) or "0"


def row(label: str, point: str, runs: list[Run]) -> list[str]:
    latency = Figure.of_runs([r.latencies_ms for r in runs])
    return [
        label, point,
        f"{statistics.median(r.rate for r in runs):.0f}",
        f"{latency.median:.2f}", f"{latency.p99:.2f}",
        _errors(runs),
        f"{per_invoke_us(runs, 'target_cpu_s'):.0f}",
        f"{per_invoke_us(runs, 'generator_cpu_s'):.0f}",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32, 128])
    parser.add_argument("--rates", type=float, nargs="*", default=[500, 1000, 2000])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pin", action="store_true", help="load generator on its own core")
    args = parser.parse_args()

    platform_cpus, generator_cpus = split_cpus(args.pin)
    print(f"machine: {machine()}; commit {commit()}; pinned: {args.pin}")
    rows = []
    with (
        baseline(platform_cpus) as (baseline_port, server),
        lamina(cpus=platform_cpus) as platform,
    ):
        pin_self(generator_cpus)
        create_noop(platform.port)
        targets = {
            "bare aiohttp reply": Target(baseline_port, "/", lambda: [server.pid], False),
            "Lamina warm invoke": Target(platform.port, INVOKE_PATH, platform.pids, True),
        }
        points: list[tuple[str, Callable[[Target, int], object]]] = [
            (f"closed, {c} clients", lambda t, i, c=c: closed_loop(t, c, args.seconds))
            for c in args.clients
        ] + [
            (f"open, {r:.0f}/s Poisson", lambda t, i, r=r: open_loop(t, r, args.seconds, i))
            for r in args.rates
        ]
        # Warm as many sandboxes as the largest point keeps busy, so none is cold later.
        widest = max([*args.clients, 8])
        for target in targets.values():
            uvloop.run(closed_loop(target, widest, 3.0))
        for point, measure in points:
            results: dict[str, list[Run]] = {label: [] for label in targets}
            for index in range(args.runs):
                for label, target in targets.items():
                    results[label].append(uvloop.run(measure(target, index)))  # type: ignore[arg-type]
            rows += [row(label, point, runs) for label, runs in results.items()]
            print("  " + " | ".join(rows[-2]) + "\n  " + " | ".join(rows[-1]), flush=True)

    print(f"{args.runs} runs of {args.seconds:.0f} s per point, medians over runs")
    header = ["target", "load", "invokes/s", "p50 ms", "p99 ms", "errors",
              "CPU µs/invoke (target)", "CPU µs/invoke (load generator)"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
