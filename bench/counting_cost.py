"""What one acquire plus release costs in the embedded counting service, with the budget.

Measures, in one process and without I/O:
- acquire + release of a lease, for one function and spread over many functions,
- with reserved concurrency in force, with the unreserved pool, and in a version's
  provisioned concurrency,
- one scaling-budget token taken (a cold start's extra cost).

    .venv/bin/python bench/counting_cost.py [--rounds 200000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lamina.counting import CountingService
from lamina.counting.budget import ScalingBudget


def per_call_us(body: Callable[[int], None], rounds: int) -> float:
    started = time.perf_counter()
    for n in range(rounds):
        body(n)
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()

    counting = CountingService()
    for n in range(50):
        counting.set_reserved(f"reserved-{n}", 10)
    counting.set_provisioned("provisioned", {"1": 100})
    held = [counting.acquire(f"other-{n}", ttl=900) for n in range(200)]  # a busy account
    names = [f"fn-{n}" for n in range(1000)]

    def one_function(_: int) -> None:
        counting.release(counting.acquire("fn", ttl=900))

    def many_functions(n: int) -> None:
        counting.release(counting.acquire(names[n % len(names)], ttl=900))

    def reserved(n: int) -> None:
        counting.release(counting.acquire(f"reserved-{n % 50}", ttl=900))

    def provisioned(_: int) -> None:
        counting.release(counting.acquire("provisioned", ttl=900, version="1"))

    budget = ScalingBudget(capacity=10**9)

    def token(n: int) -> None:
        budget.take(names[n % len(names)])

    print(f"{'operation':<42} {'µs per call':>12}")
    for label, body in (
        ("acquire+release, one function", one_function),
        ("acquire+release, 1000 functions", many_functions),
        ("acquire+release, reserved concurrency", reserved),
        ("acquire+release, provisioned concurrency", provisioned),
        ("scaling-budget token (cold start only)", token),
    ):
        print(f"{label:<42} {per_call_us(body, args.rounds):>12.2f}")
    print(f"leases held throughout: {len(held)}")


if __name__ == "__main__":
    main()
