"""Density: how many live warm sandboxes one host keeps before warm latency degrades.

    .venv/bin/python bench/warm_density.py [--step 100] [--max 1000] [--probe 500]
        [--worker-memory 131072] [--min-available-mb 4000]

Starts Lamina, then in steps creates `--step` more functions and invokes each once, so that
every step adds that many idle warm sandboxes (one per function; keep-alive 10 minutes keeps
them all). After each step a probe function is invoked `--probe` times in sequence (one
keep-alive client, in five rounds); the medians of the rounds' p50 and p99 are recorded with
the sandboxes still live (those the platform reports idle or busy) and the host's available
memory. The host is degraded from the first step after which the probe's p99 stays over twice
what it was with no other sandbox; the figure is the largest live count before that. It stops
early, and says so, when available memory falls below `--min-available-mb` (other work shares
the machine). Each sandbox reserves its function's 128 MB on the worker, so `--worker-memory`
declares enough for `--max` of them; what an idle sandbox really holds is measured with the
sandbox backends.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp
import uvloop
from suite import Figure, Lamina, available_mb, commit, lamina, machine, table
from warm_invoke import (
    INVOKE_PATH,
    create_function,
    create_function_zip,
    create_noop,
    latency,
    signed,
)

PROBE_ROUNDS = 5
NOOP = create_function_zip("def handler(event, context):\n    return None\n")


def live(platform: Lamina) -> int:
    sandboxes = platform.state()["sandboxes"]
    return int(sandboxes["idle"] + sandboxes["busy"])


async def first_invokes(port: int, names: list[str], concurrency: int) -> int:
    """Invoke each function once, `concurrency` at a time; the number that failed."""
    failed = 0
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def one(name: str) -> None:
            nonlocal failed
            path = f"/2015-03-31/functions/{name}/invocations"
            async with gate:
                url = f"http://127.0.0.1:{port}{path}"
                headers = signed(port, "POST", path, b"{}")
                async with session.post(url, data=b"{}", headers=headers) as reply:
                    await reply.read()
                    failed += reply.status != 200

        await asyncio.gather(*(one(name) for name in names))
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--max", type=int, default=1000)
    parser.add_argument("--probe", type=int, default=500)
    parser.add_argument("--worker-memory", type=int, default=131072)
    parser.add_argument("--min-available-mb", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runtime", default="python3.11")
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    rows, stopped = [], "reached --max"
    with lamina("--worker-memory", str(args.worker_memory)) as platform:
        create_noop(platform.port)
        latency(platform.port, INVOKE_PATH, 200)
        created, first_p99 = 0, None
        while True:
            # Rounds, so that a burst of other work on the host moves one round, not the figure.
            rounds = [latency(platform.port, INVOKE_PATH, args.probe // PROBE_ROUNDS)
                      for _ in range(PROBE_ROUNDS)]  # fmt: skip
            probe = Figure.of_runs(rounds)
            p50, p99 = probe.median, probe.p99
            first_p99 = first_p99 or p99
            count = live(platform) - 1  # the probe's own sandbox is not counted
            files = sum(len(list(Path(f"/proc/{pid}/fd").iterdir()))
                        for pid in platform.worker_pids())  # fmt: skip
            rows.append([str(created), str(count), f"{p50:.2f}", f"{p99:.2f}",
                         f"{p99 / first_p99:.1f}x", str(available_mb()), str(files)])  # fmt: skip
            print("  " + " | ".join(rows[-1]), flush=True)
            if created >= args.max:
                break
            if available_mb() < args.min_available_mb:
                stopped = f"available memory below {args.min_available_mb} MB"
                break
            names = [f"idle-{i}" for i in range(created, created + args.step)]
            began = time.perf_counter()
            for name in names:
                create_function(platform.port, name, args.runtime, NOOP)
            failed = uvloop.run(first_invokes(platform.port, names, args.concurrency))
            created += len(names)
            print(f"  +{len(names)} sandboxes in {time.perf_counter() - began:.0f} s, "
                  f"{failed} failed", flush=True)  # fmt: skip

    # Degraded from the first step whose p99, and every later one's, is over twice the first:
    # a single slow step is other work on the host, a lasting one is density.
    doubled = [float(r[3]) > 2 * float(rows[0][3]) for r in rows]
    lasting = next((i for i in range(len(rows)) if all(doubled[i:])), len(rows))
    kept = int(rows[lasting - 1][1]) if lasting > 0 else 0
    print(f"stopped: {stopped}; largest live count before p99 stayed doubled: {kept}")
    header = ["sandboxes created", "live (idle or busy)", "probe p50 ms", "probe p99 ms",
              "p99 vs none", "host MemAvailable MB", "worker open files"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()
