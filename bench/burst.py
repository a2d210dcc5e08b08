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
`lamina up` does), since an idle sandbox holds far less than it reserves.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import time
import urllib.request

import aiohttp
import uvloop
from suite import Figure, baseline, commit, cpu_seconds, lamina, machine, table
from warm_invoke import create_function, create_function_zip, signed

HANDLER = "import time\n\ndef handler(event, context):\n    time.sleep({seconds})\n"


def state(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_lamina/v1/state", timeout=30) as reply:
        return json.load(reply)


async def fire(port: int, names: list[str], invokes: int) -> tuple[list[float], list[str], float]:
    """All invokes at once; their latencies (ms), their error types, the time to the last."""
    paths = [f"/2015-03-31/functions/{names[i % len(names)]}/invocations" for i in range(invokes)]
    headers = {path: signed(port, "POST", path, b"{}") for path in set(paths)}
    latencies: list[float] = []
    errors: list[str] = []
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
        await asyncio.gather(*tasks)
        return latencies, errors, time.perf_counter() - began


def one_run(args: argparse.Namespace) -> dict:
    extra = ["--worker-memory", str(args.worker_memory)] if args.worker_memory else []
    with lamina(*extra) as platform:
        code = create_function_zip(HANDLER.format(seconds=args.sleep_ms / 1000))
        names = [f"burst-{i}" for i in range(args.functions)]
        for name in names:
            create_function(platform.port, name, args.runtime, code)
        cpu_before = cpu_seconds(platform.pids())
        latencies, errors, elapsed = uvloop.run(fire(platform.port, names, args.invokes))
        scaling = state(platform.url)["scaling"]
        cpu = cpu_seconds(platform.pids()) - cpu_before
    with baseline() as (port, _):
        _, _, floor = uvloop.run(fire(port, names, args.invokes))
    return {
        "floor": floor,
        "elapsed": elapsed,
        "latencies": latencies,
        "errors": collections.Counter(errors),
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
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    runs = []
    for index in range(args.runs):
        runs.append(one_run(args))
        last = runs[-1]
        print(f"  run {index + 1}: {last['elapsed']:.1f} s, created {last['created']}, "
              f"errors {dict(last['errors'])}", flush=True)  # fmt: skip

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
              "sandboxes created", "created/s",
              "most busy at once", "p50 ms", "p99 ms", "platform CPU s"]  # fmt: skip
    row = [
        f"{median('elapsed'):.2f}", f"{median('floor'):.2f}",
        ", ".join(f"{k}: {v}" for k, v in errors.items()) or "0",
        f"{median('created'):.0f}", f"{rate:.0f}", f"{median('peak_busy'):.0f}",
        f"{latency.median:.0f}", f"{latency.p99:.0f}", f"{median('cpu'):.1f}",
    ]  # fmt: skip
    print(table(header, [row]))


if __name__ == "__main__":
    main()
