"""Asynchronous invokes: how fast Lamina accepts events, and how soon after the 202 they start.

    .venv/bin/python bench/async_events.py [--clients 32] [--burst-seconds 5]
                                           [--rate 100] [--seconds 20]

Starts `lamina up` on a free loopback port with a fresh data directory, then:

- accept rate: closed loops of C concurrent clients send Event invokes for a fixed time; every
  answer must be a 202, given only once the event is synced to disk (events per second);
- 202-to-start delay: once that backlog has drained, an open loop sends events at a steady
  rate; the handler prints the wall-clock time it started, and the delay is that time minus
  the time the client received the event's 202 (p50, p99, max).

The load generator runs on the same machine as Lamina. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from suite import free_port, percentile, wait_until_up
from warm_invoke import create_function_zip

from lamina.auth.signing import signed_headers

STAMPED = """
import time

def handler(event, context):
    print("STARTED", event["id"], repr(time.time()))
"""


def create(url: str, name: str) -> None:
    lam: Any = boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    lam.create_function(
        FunctionName=name,
        Runtime=f"python3.{sys.version_info.minor}",
        Role="arn:aws:iam::000000000000:role/bench",
        Handler="index.handler",
        Code={"ZipFile": create_function_zip(STAMPED)},
        Timeout=10,
    )
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def started_at(data_dir: Path, name: str) -> dict[str, float]:
    """Event id -> when its handler started, from the function's log files."""
    found: dict[str, float] = {}
    for path in data_dir.glob(f"workers/*/logs/aws/lambda/{name}/**/*.log"):
        for event_id, stamp in re.findall(r"^STARTED (\S+) (\S+)$", path.read_text(), re.M):
            found.setdefault(event_id, float(stamp))
    return found


async def send(session: aiohttp.ClientSession, url: str, event_id: str) -> float:
    """One Event invoke; the wall-clock time its 202 arrived."""
    body = json.dumps({"id": event_id}).encode()
    invocation = {"X-Amz-Invocation-Type": "Event"}
    headers = signed_headers("POST", url, body, ("test", "test"), "us-east-1", invocation)
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status != 202:
            raise RuntimeError(f"status {response.status}")
    return time.time()


async def accept_rate(url: str, clients: int, seconds: float) -> tuple[float, int]:
    """Closed loop of `clients` senders; (events accepted per second, events sent)."""
    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                event_id = f"burst-{done}"
                done += 1
                await send(session, url, event_id)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed, done


async def steady(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Open loop: one event every 1/rate s, whatever the answers; event id -> 202 time."""
    accepted: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def one(event_id: str) -> None:
            accepted[event_id] = await send(session, url, event_id)

        tasks = []
        start = time.perf_counter()
        for index in range(int(rate * seconds)):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(f"steady-{index}")))
        await asyncio.gather(*tasks)
    return accepted


def wait_for_starts(data_dir: Path, name: str, ids: set[str], seconds: float) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    while True:
        found = started_at(data_dir, name)
        if ids <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--burst-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="lamina-bench-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    lamina = subprocess.Popen(
        [sys.executable, "-m", "lamina", "up", "--port", str(port),
         "--data-dir", str(data_dir), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(port, "/_lamina/health")
        create(url, "stamped")
        invoke_url = f"{url}/2015-03-31/functions/stamped/invocations"

        rate, sent = asyncio.run(accept_rate(invoke_url, args.clients, args.burst_seconds))
        # The steady phase starts on an empty queue: every event of the burst has run.
        burst = {f"burst-{i}" for i in range(sent)}
        wait_for_starts(data_dir, "stamped", burst, 600)

        accepted = asyncio.run(steady(invoke_url, args.rate, args.seconds))
        starts = wait_for_starts(data_dir, "stamped", set(accepted), 120)
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    delays = [(starts[i] - accepted[i]) * 1000 for i in accepted if i in starts]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")  # fmt: skip
    print()
    print(f"| accepted events/s, {args.clients} clients | events accepted in "
          f"{args.burst_seconds:.0f} s |")  # fmt: skip
    print("|---|---|")
    print(f"| {rate:.0f} | {sent} |")
    print()
    print("| steady rate | events | started | 202-to-start p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.rate:.0f}/s for {args.seconds:.0f} s | {len(accepted)} | {len(delays)} | "
          f"{percentile(delays, 0.5):.1f} | {percentile(delays, 0.99):.1f} | "
          f"{max(delays):.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
