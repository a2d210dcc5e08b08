"""Replay an Azure Functions 2019 trace sample through Lamina's keep-alive policies.

Each function is one sandbox that is either loaded or not, as in "Serverless in the Wild"
(ATC 2020): an invoke in a minute where the function is not loaded is a cold start, and the
other invokes of that minute are warm. The replay drives the same policy objects the
assignment part uses (`lamina.assignment.keepalive`), telling them when invokes start and end.

Reported per policy:
- cold-start share over all invocations,
- cold-start share of the 75th-percentile function (functions ranked by their own share),
  and the same without each function's first invoke, which is cold under every policy,
- idle memory-time (MB x minutes loaded while not running) relative to keeping every
  function loaded for the whole trace.

    .venv/bin/python bench/keepalive_replay.py [../shared/traces/azure2019_500fn_8h]
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lamina.assignment.keepalive import (
    MINUTE,
    FixedKeepAlive,
    HybridHistogramPolicy,
    KeepAlivePolicy,
)

DEFAULT_TRACE = Path(__file__).resolve().parents[1].parent / "shared/traces/azure2019_500fn_8h"


@dataclass(frozen=True)
class TraceFunction:
    name: str
    memory_mb: float
    per_minute: list[int]


@dataclass(frozen=True)
class ReplayResult:
    policy: str
    cold_share: float
    p75_function_cold_share: float
    p75_function_cold_after_first: float
    idle_memory_vs_always_warm: float


def load(trace: Path) -> list[TraceFunction]:
    memory: dict[str, float] = {}
    with open(trace / "memory.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            memory[row["HashFunction"]] = float(row["AverageAllocatedMb"])
    typical = statistics.median(memory.values())

    functions = []
    with open(trace / "invocations.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        first_minute = header.index("Trigger") + 1
        for row in reader:
            name = row[2]
            counts = [int(value) for value in row[first_minute:]]
            functions.append(TraceFunction(name, memory.get(name, typical), counts))
    return functions


def replay_function(policy: KeepAlivePolicy, function: TraceFunction) -> tuple[int, int, float]:
    """Cold starts, invocations and idle MB-minutes of one function under `policy`."""
    horizon = len(function.per_minute) * MINUTE
    loaded_from: float | None = None  # the loaded interval after the last invoke
    loaded_until = 0.0
    cold = invocations = 0
    idle_s = 0.0

    for minute, count in enumerate(function.per_minute):
        if not count:
            continue
        start = minute * MINUTE
        warm = loaded_from is not None and loaded_from <= start <= loaded_until
        if loaded_from is not None:
            idle_s += max(0.0, min(start, loaded_until) - loaded_from)
        cold += 0 if warm else 1
        invocations += count

        # At minute granularity an invoke occupies its minute; the idle time is what follows.
        policy.started(function.name, start)
        end = start + MINUTE
        window = policy.finished(function.name, end)
        loaded_from = end + window.prewarm_s
        loaded_until = loaded_from + window.keep_alive_s

    if loaded_from is not None:
        idle_s += max(0.0, min(horizon, loaded_until) - min(horizon, loaded_from))
    return cold, invocations, idle_s / MINUTE * function.memory_mb


def replay(policy: KeepAlivePolicy, functions: list[TraceFunction]) -> ReplayResult:
    cold_total = invocations_total = 0
    idle_total = 0.0
    shares = []
    after_first = []
    for function in functions:
        cold, invocations, idle = replay_function(policy, function)
        if not invocations:
            continue
        cold_total += cold
        invocations_total += invocations
        idle_total += idle
        shares.append(cold / invocations)
        # The first invoke of a function in the trace is cold under every policy.
        after_first.append((cold - 1) / max(1, invocations - 1))

    always_warm = sum(
        function.memory_mb * sum(1 for count in function.per_minute if not count)
        for function in functions
        if any(function.per_minute)
    )
    shares.sort()
    after_first.sort()
    return ReplayResult(
        policy=policy.name,
        cold_share=cold_total / invocations_total,
        p75_function_cold_share=shares[int(0.75 * (len(shares) - 1))],
        p75_function_cold_after_first=after_first[int(0.75 * (len(after_first) - 1))],
        idle_memory_vs_always_warm=idle_total / always_warm,
    )


POLICIES: dict[str, Callable[[], KeepAlivePolicy]] = {
    "fixed-10min": lambda: FixedKeepAlive(600.0),
    "fixed-60min": lambda: FixedKeepAlive(3600.0),
    "hybrid-histogram": HybridHistogramPolicy,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", nargs="?", type=Path, default=DEFAULT_TRACE)
    args = parser.parse_args()

    functions = load(args.trace)
    active = sum(1 for function in functions if any(function.per_minute))
    print(f"trace {args.trace.name}: {len(functions)} functions, {active} invoked")
    print(
        f"{'policy':<18} {'cold share':>10} {'p75 fn cold':>12} {'(after 1st)':>12} "
        f"{'idle mem vs warm':>17}"
    )
    for make in POLICIES.values():
        result = replay(make(), functions)
        print(
            f"{result.policy:<18} {result.cold_share:>10.2%} "
            f"{result.p75_function_cold_share:>12.2%} "
            f"{result.p75_function_cold_after_first:>12.2%} "
            f"{result.idle_memory_vs_always_warm:>17.2%}"
        )


if __name__ == "__main__":
    main()
