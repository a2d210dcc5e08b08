"""How long starting one child process holds a large process's event loop, with a
`preexec_fn` (Python forks the whole parent) and with the argv prefix Lamina uses instead
(`setpriv --pdeathsig`, which lets Python vfork).

    .venv/bin/python bench/spawn_cost.py [--heap-mb 300] [--spawns 50]

The parent first touches `--heap-mb` of memory, as a worker holding many sandboxes does; each
figure is the mean time from asking for the child to the event loop running again.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Callable

from suite import commit, machine

from lamina.orphans import die_with_parent, die_with_parent_argv

_MB = 1 << 20
_PAGE = 4096


async def blocked_ms(argv: list[str], preexec: Callable[[], None] | None, spawns: int) -> float:
    total = 0.0
    for _ in range(spawns):
        started = time.perf_counter()
        child = await asyncio.create_subprocess_exec(
            *argv, preexec_fn=preexec, start_new_session=True
        )
        total += time.perf_counter() - started
        await child.wait()
    return total / spawns * 1000


async def measure(spawns: int) -> None:
    armed = die_with_parent_argv(signal.SIGKILL)
    with_preexec = await blocked_ms(["/bin/true"], die_with_parent(signal.SIGKILL), spawns)
    with_prefix = await blocked_ms([*armed, "/bin/true"], None, spawns)
    print(f"preexec_fn (fork): {with_preexec:.2f} ms per spawn")
    print(f"setpriv prefix (vfork): {with_prefix:.2f} ms per spawn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heap-mb", type=int, default=300)
    parser.add_argument("--spawns", type=int, default=50)
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    heap = [bytearray(_MB) for _ in range(args.heap_mb)]
    for block in heap:
        block[::_PAGE] = b"x" * len(block[::_PAGE])  # every page touched, so really held
    asyncio.run(measure(args.spawns))


if __name__ == "__main__":
    main()
