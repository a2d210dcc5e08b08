"""Packing density and idle memory when the Azure Functions 2019 sample is replayed on three
workers, with Lamina's placement and with round-robin placement in the same run.

    .venv/bin/python bench/placement_replay.py [--worker-memory 32768] [--keep-alive 600]

The 24 hours of `../shared/traces/azure2019_100fn_24h/` (invocations per function per
minute, average duration, average allocated memory) are replayed on a simulated clock, so the
day runs in seconds. The sandbox pool is modelled as assignment keeps it: one invoke per
sandbox, warm reuse of the most recently used idle one, idle sandboxes reclaimed after the
keep-alive or evicted least recently used first when a new one needs the room. Each new
sandbox goes where `lamina.placement.place` says; the baseline hands new sandboxes to the
workers in turn, skipping those it cannot fit on. Invokes inside a minute are spread evenly.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import itertools
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lamina.placement import PlacementRequest, WorkerView, place

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "azure2019_100fn_24h"
SAMPLE_S = 60.0


@dataclass(frozen=True)
class Function:
    name: str
    memory_mb: int
    duration_s: float
    per_minute: list[int]


def load_trace(folder: Path) -> list[Function]:
    with open(folder / "100_mem.csv") as handle:
        memory = {
            row["HashApp"]: float(row["AverageAllocatedMb"]) for row in csv.DictReader(handle)
        }
    with open(folder / "100_run.csv") as handle:
        duration = {row["HashFunction"]: float(row["Average"]) for row in csv.DictReader(handle)}
    functions = []
    with open(folder / "100_inv.csv") as handle:
        for row in csv.DictReader(handle):
            name = row["HashFunction"]
            counts = [int(row[f"minute_{m}"]) for m in range(1, 1441)]
            # Lambda's memory sizes: at least 128 MB, in whole MB; round the average up.
            size = max(128, math.ceil(memory.get(row["HashApp"], 128)))
            functions.append(Function(name[:8], size, duration.get(name, 100.0) / 1000, counts))
    return functions


@dataclass
class Sandbox:
    function: str
    worker: int
    memory_mb: int
    idle_since: float = 0.0


@dataclass
class Worker:
    worker_id: str
    zone: str
    capacity_mb: int
    sandboxes: set[int] = field(default_factory=set)


Policy = Callable[[PlacementRequest, list[WorkerView]], "str | None"]


def lamina_policy(request: PlacementRequest, views: list[WorkerView]) -> str | None:
    return place(request, views).worker_id


def round_robin_policy() -> Policy:
    turn = itertools.count()

    def choose(request: PlacementRequest, views: list[WorkerView]) -> str | None:
        start = next(turn)
        for offset in range(len(views)):
            view = views[(start + offset) % len(views)]
            if view.memory_available_mb >= request.memory_mb:
                return view.worker_id
        return None

    return choose


@dataclass
class Totals:
    invokes: int = 0
    cold: int = 0
    refused: int = 0
    evicted: int = 0
    density_in_use: list[float] = field(default_factory=list)
    density_fleet: list[float] = field(default_factory=list)
    idle_mb: list[float] = field(default_factory=list)
    empty_workers: list[int] = field(default_factory=list)
    # The emptiest host's density: what draining one host would have to move.
    density_lowest: list[float] = field(default_factory=list)


class Pool:
    """The sandboxes of every function across the workers, as assignment keeps them."""

    def __init__(
        self, policy: Policy, worker_memory_mb: int, keep_alive_s: float, zones: list[str]
    ) -> None:
        self.policy = policy
        self.keep_alive_s = keep_alive_s
        self.workers = [Worker(f"w{i + 1}", z, worker_memory_mb) for i, z in enumerate(zones)]
        self.sandboxes: dict[int, Sandbox] = {}
        self.idle: dict[str, deque[int]] = {}
        self.busy: set[int] = set()
        self.ids = itertools.count()
        self.totals = Totals()

    def invoke(self, function: Function, now: float) -> int | None:
        """Start one invoke; returns the sandbox it runs in, or None when refused."""
        self.totals.invokes += 1
        idle = self.idle.get(function.name)
        if idle:
            sandbox_id = idle.pop()
        else:
            sandbox_id = self._create(function)
            if sandbox_id is None:
                self.totals.refused += 1
                return None
            self.totals.cold += 1
        self.busy.add(sandbox_id)
        return sandbox_id

    def finish(self, sandbox_id: int, now: float) -> None:
        self.busy.discard(sandbox_id)
        sandbox = self.sandboxes[sandbox_id]
        sandbox.idle_since = now
        self.idle.setdefault(sandbox.function, deque()).append(sandbox_id)

    def _create(self, function: Function) -> int | None:
        views = self._views()
        worker_id = self.policy(PlacementRequest(function.name, function.memory_mb), views)
        if worker_id is None:
            return None
        index = next(i for i, v in enumerate(views) if v.worker_id == worker_id)
        self._evict(index, function.memory_mb - views[index].memory_free_mb)
        sandbox_id = next(self.ids)
        self.sandboxes[sandbox_id] = Sandbox(function.name, index, function.memory_mb)
        self.workers[index].sandboxes.add(sandbox_id)
        return sandbox_id

    def _views(self) -> list[WorkerView]:
        views = []
        for worker in self.workers:
            reserved = idle = 0
            per_function: dict[str, int] = {}
            for sandbox_id in worker.sandboxes:
                sandbox = self.sandboxes[sandbox_id]
                reserved += sandbox.memory_mb
                idle += 0 if sandbox_id in self.busy else sandbox.memory_mb
                per_function[sandbox.function] = per_function.get(sandbox.function, 0) + 1
            views.append(
                WorkerView(
                    worker.worker_id, worker.zone, worker.capacity_mb, reserved,
                    sandboxes=len(worker.sandboxes), memory_idle_mb=idle,
                    function_sandboxes=per_function,
                )
            )  # fmt: skip
        return views

    def _evict(self, index: int, needed_mb: int) -> None:
        if needed_mb <= 0:
            return
        idle = sorted(
            (s for s in self.workers[index].sandboxes if s not in self.busy),
            key=lambda s: self.sandboxes[s].idle_since,
        )
        freed = 0
        for sandbox_id in idle:
            if freed >= needed_mb:
                break
            freed += self.sandboxes[sandbox_id].memory_mb
            self._destroy(sandbox_id)
            self.totals.evicted += 1

    def _destroy(self, sandbox_id: int) -> None:
        sandbox = self.sandboxes.pop(sandbox_id)
        self.workers[sandbox.worker].sandboxes.discard(sandbox_id)
        self.idle[sandbox.function].remove(sandbox_id)

    def reap(self, now: float) -> None:
        for idle in self.idle.values():
            while idle and self.sandboxes[idle[0]].idle_since + self.keep_alive_s <= now:
                self._destroy(idle[0])

    def sample(self) -> None:
        reserved = [sum(self.sandboxes[s].memory_mb for s in w.sandboxes) for w in self.workers]
        capacity = [w.capacity_mb for w in self.workers]
        in_use = [i for i, w in enumerate(self.workers) if w.sandboxes]
        if in_use:
            used = sum(reserved[i] for i in in_use) / sum(capacity[i] for i in in_use)
            self.totals.density_in_use.append(used)
        self.totals.density_fleet.append(sum(reserved) / sum(capacity))
        self.totals.density_lowest.append(
            min(r / c for r, c in zip(reserved, capacity, strict=True))
        )
        idle_ids = (s for s in self.sandboxes if s not in self.busy)
        self.totals.idle_mb.append(sum(self.sandboxes[s].memory_mb for s in idle_ids))
        self.totals.empty_workers.append(len(self.workers) - len(in_use))


def replay(functions: list[Function], pool: Pool) -> Totals:
    events: list[tuple[float, int, int, int]] = []  # time, order, kind, data
    order = itertools.count()
    for index, function in enumerate(functions):
        for minute, count in enumerate(function.per_minute):
            for n in range(count):
                at = minute * 60.0 + (n + 0.5) * 60.0 / count
                events.append((at, next(order), 1, index))
    for minute in range(1441):
        events.append((minute * SAMPLE_S, next(order), 0, 0))
    heapq.heapify(events)

    while events:
        now, _, kind, data = heapq.heappop(events)
        if kind == 0:
            pool.reap(now)
            pool.sample()
        elif kind == 1:
            function = functions[data]
            sandbox_id = pool.invoke(function, now)
            if sandbox_id is not None:
                heapq.heappush(events, (now + function.duration_s, next(order), 2, sandbox_id))
        else:
            pool.finish(data, now)
    return pool.totals


def report(name: str, totals: Totals) -> str:
    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else 0.0

    return (
        f"| {name} | {mean(totals.density_in_use):.1%} | {mean(totals.density_fleet):.1%} "
        f"| {mean(totals.idle_mb) / 1024:.1f} | {max(totals.idle_mb) / 1024:.1f} "
        f"| {mean(totals.density_lowest):.1%} | {mean(totals.empty_workers):.2f} "
        f"| {totals.cold} | {totals.evicted} | {totals.refused} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--worker-memory", type=int, default=32768, help="MB per worker")
    parser.add_argument("--keep-alive", type=float, default=600.0, help="seconds")
    parser.add_argument("--zones", default="a,b,c", help="zone of each of the three workers")
    args = parser.parse_args()

    zones = args.zones.split(",")
    if len(zones) != 3:
        parser.error("--zones names the zone of each of the three workers, e.g. a,b,c")
    functions = load_trace(args.trace)
    total = sum(sum(f.per_minute) for f in functions)
    print(
        f"{len(functions)} functions, {total} invokes over 24 h, 3 workers of "
        f"{args.worker_memory} MB in zones {args.zones}, keep-alive {args.keep_alive:.0f} s"
    )
    print(
        "| placement | density of hosts in use | density of the fleet | idle GB (mean) "
        "| idle GB (max) | emptiest host's density | empty hosts (mean) | cold starts "
        "| evictions | refused |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    policies = [("Lamina (spread, best fit, load)", lamina_policy),
                ("round robin", round_robin_policy())]  # fmt: skip
    started = time.monotonic()
    for name, policy in policies:
        totals = replay(functions, Pool(policy, args.worker_memory, args.keep_alive, zones))
        print(report(name, totals))
    print(f"(both replays of the day took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
