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
  function loaded for the whole trace,
- a bound no policy can beat: the 75th-percentile share if every invoke but a function's
  first in the measured span were warm (the first is cold unless the warm-up saw it).

With `--warm-up-minutes N` the policies see the first N minutes, as a platform that has been
running for a while has, and only the rest is measured.

    .venv/bin/python bench/keepalive_replay.py [--warm-up-minutes N] [TRACE_DIR]
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
    p75_bound: float


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


def replay_function(
    policy: KeepAlivePolicy, function: TraceFunction, warm_up: int = 0
) -> tuple[int, int, float]:
    """Cold starts, invocations and idle MB-minutes of one function under `policy`, counted
    from minute `warm_up` on; earlier invokes only teach the policy and load sandboxes."""
    horizon = len(function.per_minute) * MINUTE
    measured_from = warm_up * MINUTE
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
            idle_s += _measured(loaded_from, min(start, loaded_until), measured_from, horizon)
        if minute >= warm_up:
            cold += 0 if warm else 1
            invocations += count

        # At minute granularity an invoke occupies its minute; the idle time is what follows.
        policy.started(function.name, start)
        end = start + MINUTE
        window = policy.finished(function.name, end)
        loaded_from = end + window.prewarm_s
        loaded_until = loaded_from + window.keep_alive_s

    if loaded_from is not None:
        idle_s += _measured(loaded_from, loaded_until, measured_from, horizon)
    return cold, invocations, idle_s / MINUTE * function.memory_mb


def _measured(begin: float, end: float, measured_from: float, horizon: float) -> float:
    """The part of [begin, end] inside the measured span."""
    return max(0.0, min(end, horizon) - max(begin, measured_from))


def replay(
    policy: KeepAlivePolicy, functions: list[TraceFunction], warm_up: int = 0
) -> ReplayResult:
    cold_total = invocations_total = 0
    idle_total = 0.0
    shares = []
    after_first = []
    bound = []
    for function in functions:
        cold, invocations, idle = replay_function(policy, function, warm_up)
        idle_total += idle
        if not invocations:
            continue
        cold_total += cold
        invocations_total += invocations
        shares.append(cold / invocations)
        # A function's first invoke is cold under every policy, unless the warm-up saw one.
        compulsory = 0 if any(function.per_minute[:warm_up]) else 1
        after_first.append((cold - compulsory) / max(1, invocations - compulsory))
        bound.append(compulsory / invocations)

    always_warm = sum(
        function.memory_mb * sum(1 for count in function.per_minute[warm_up:] if not count)
        for function in functions
        if any(function.per_minute)
    )
    return ReplayResult(
        policy=policy.name,
        cold_share=cold_total / invocations_total,
        p75_function_cold_share=_p75(shares),
        p75_function_cold_after_first=_p75(after_first),
        idle_memory_vs_always_warm=idle_total / always_warm,
        p75_bound=_p75(bound),
    )


def _p75(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.75 * (len(ordered) - 1))]


POLICIES: dict[str, Callable[[], KeepAlivePolicy]] = {
    "fixed-10min": lambda: FixedKeepAlive(600.0),
    "fixed-60min": lambda: FixedKeepAlive(3600.0),
    "hybrid-histogram": HybridHistogramPolicy,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", nargs="?", type=Path, default=DEFAULT_TRACE)
    parser.add_argument(
        "--warm-up-minutes",
        type=int,
        default=0,
        help="minutes the policies learn from before cold starts and memory are counted",
    )
    args = parser.parse_args()

    functions = load(args.trace)
    if not 0 <= args.warm_up_minutes < len(functions[0].per_minute):
        parser.error("--warm-up-minutes must leave some of the trace to measure")
    active = sum(1 for function in functions if any(function.per_minute[args.warm_up_minutes :]))
    print(
        f"trace {args.trace.name}: {len(functions)} functions, {active} invoked after a "
        f"warm-up of {args.warm_up_minutes} min"
    )
    print(
        f"{'policy':<18} {'cold share':>10} {'p75 fn cold':>12} {'(after 1st)':>12} "
        f"{'idle mem vs warm':>17}"
    )
    bound = 0.0
    for make in POLICIES.values():
        result = replay(make(), functions, args.warm_up_minutes)
        bound = result.p75_bound
        print(
            f"{result.policy:<18} {result.cold_share:>10.2%} "
            f"{result.p75_function_cold_share:>12.2%} "
            f"{result.p75_function_cold_after_first:>12.2%} "
            f"{result.idle_memory_vs_always_warm:>17.2%}"
        )
    print(f"{'no policy beats':<18} {'':>10} {bound:>12.2%}")


if __name__ == "__main__":
    main()
