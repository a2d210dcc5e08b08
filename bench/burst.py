"""Burst scale-out: many concurrent first invokes, of one function or spread over many.

    .venv/bin/python bench/burst.py [--invokes 1000] [--functions 1] [--sleep-ms 200]
        [--runs 3] [--worker-memory MB]

Starts a fresh Lamina per run, creates the functions (a Python handler that sleeps
`--sleep-ms`, so that concurrent invokes need sandboxes of their own), then sends all the
invokes at once, each on its own connection, none of the functions having a sandbox yet.
Reports the time until every invoke answered, the errors by type, the sandboxes created and
the rate at which they were created (created over the time until the last answer), and the
invoke latency. The floor, in the same run: the same load generator sending the same requests
at once to a bare aiohttp server answering `null` (how long 1,000 fresh connections take here).
Sandboxes reserve their function's memory size (128 MB) on the worker;
`--worker-memory` declares how much the worker offers (default: the host's memory, as
`lamina up` does), since an idle sandbox holds far less than it reserves. A run is cancelled,
and the benchmark stops, once the burst has taken `--memory-budget-mb` of the host's memory
(MemAvailable's fall; other work shares the host).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import time
from dataclasses import dataclass, field

import aiohttp
import uvloop
from suite import Figure, available_mb, baseline, commit, cpu_seconds, lamina, machine, table
from warm_invoke import create_function, create_function_zip, signed

HANDLER = "import time\n\ndef handler(event, context):\n    time.sleep({seconds})\n"


@dataclass
class Burst:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # The most host memory the burst took (MemAvailable's fall), and whether it hit the budget.
    peak_mb: int = 0
    stopped: bool = False


async def fire(port: int, names: list[str], invokes: int, budget_mb: int) -> Burst:
    """All invokes at once; cancelled when they take more than `budget_mb` of host memory."""
    paths = [f"/2015-03-31/functions/{names[i % len(names)]}/invocations" for i in range(invokes)]
    headers = {path: signed(port, "POST", path, b"{}") for path in set(paths)}
    burst = Burst()
    latencies, errors = burst.latencies_ms, burst.errors
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = asyncio.Event()

        async def one(path: str) -> None:
            await start.wait()
            began = time.perf_counter()
            try:
                url = f"http://127.0.0.1:{port}{path}"
                async with session.post(url, data=b"{}", headers=headers[path]) as reply:
                    body = await reply.read()
                    if reply.status != 200 or "X-Amz-Function-Error" in reply.headers:
                        errors.append(reply.headers.get("X-Amzn-ErrorType", body[:80].decode()))
            except aiohttp.ClientError as exc:
                errors.append(type(exc).__name__)
            latencies.append((time.perf_counter() - began) * 1000)

        tasks = [asyncio.ensure_future(one(path)) for path in paths]
        await asyncio.sleep(0.1)  # every task waits at the start line
        began = time.perf_counter()
        start.set()
        watch = asyncio.ensure_future(_watch_memory(burst, tasks, budget_mb))
        await asyncio.gather(*tasks, return_exceptions=True)
        burst.seconds = time.perf_counter() - began
        watch.cancel()
    return burst


async def _watch_memory(burst: Burst, tasks: list[asyncio.Future[None]], budget_mb: int) -> None:
    """Cancel the burst once it holds `budget_mb` of the host's memory: others share it."""
    before = available_mb()
    while True:
        burst.peak_mb = max(burst.peak_mb, before - available_mb())
        if burst.peak_mb > budget_mb:
            burst.stopped = True
            for task in tasks:
                task.cancel()
            return
        await asyncio.sleep(0.2)


def one_run(args: argparse.Namespace) -> dict:
    extra = ["--worker-memory", str(args.worker_memory)] if args.worker_memory else []
    with lamina(*extra) as platform:
        code = create_function_zip(HANDLER.format(seconds=args.sleep_ms / 1000))
        names = [f"burst-{i}" for i in range(args.functions)]
        for name in names:
            create_function(platform.port, name, args.runtime, code)
        cpu_before = cpu_seconds(platform.pids())
        burst = uvloop.run(fire(platform.port, names, args.invokes, args.memory_budget_mb))
        scaling = platform.state()["scaling"]
        cpu = cpu_seconds(platform.pids()) - cpu_before
    with baseline() as (port, _):
        floor = uvloop.run(fire(port, names, args.invokes, args.memory_budget_mb))
    return {
        "floor": floor.seconds,
        "elapsed": burst.seconds,
        "latencies": burst.latencies_ms,
        "errors": collections.Counter(burst.errors),
        "memory_mb": burst.peak_mb,
        "stopped": burst.stopped,
        "created": scaling["created"],
        "peak_busy": scaling["peak_busy"],
        "cpu": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invokes", type=int, default=1000)
    parser.add_argument("--functions", type=int, default=1)
    parser.add_argument("--sleep-ms", type=float, default=200.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker-memory", type=int, default=None)
    parser.add_argument("--runtime", default="python3.11")
    parser.add_argument("--memory-budget-mb", type=int, default=11000)
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    runs = []
    for index in range(args.runs):
        runs.append(one_run(args))
        last = runs[-1]
        print(f"  run {index + 1}: {last['elapsed']:.1f} s, {len(last['latencies'])} answered, "
              f"created {last['created']}, "
              f"errors {dict(last['errors'])}, host memory taken {last['memory_mb']} MB",
              flush=True)  # fmt: skip
        if last["stopped"]:
            print(f"  stopped: the burst took over {args.memory_budget_mb} MB of host memory")
            break

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    latency = Figure.of_runs([r["latencies"] for r in runs])
    errors: collections.Counter[str] = collections.Counter()
    for run in runs:
        errors.update(run["errors"])
    rate = statistics.median(r["created"] / r["elapsed"] for r in runs)
    print(f"{args.invokes} concurrent first invokes over {args.functions} function(s), "
          f"handler sleeping {args.sleep_ms:.0f} ms; medians over {len(runs)} runs")  # fmt: skip
    header = ["all answered s", "bare reply: all answered s", "errors (all runs)",
              "sandboxes created", "created/s", "most busy at once", "host memory MB",
              "p50 ms", "p99 ms", "platform CPU s"]  # fmt: skip
    row = [
        f"{median('elapsed'):.2f}", f"{median('floor'):.2f}",
        ", ".join(f"{k}: {v}" for k, v in errors.items()) or "0",
        f"{median('created'):.0f}", f"{rate:.0f}", f"{median('peak_busy'):.0f}",
        f"{median('memory_mb'):.0f}", f"{latency.median:.0f}", f"{latency.p99:.0f}",
        f"{median('cpu'):.1f}",
    ]  # fmt: skip
    print(table(header, [row]))


if __name__ == "__main__":
    main()
