"""What the runtime's imports cost in idle memory: the PSS of an idle `-I -S` interpreter that
imported a set of modules, beside five more like it (so that pages shared between
interpreters are shared as among sandboxes), against a bare one measured the same way.

    .venv/bin/python bench/import_memory.py [--python /usr/bin/python3.11]

Prints one Markdown row per set of modules: its PSS and what it adds to the bare interpreter.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from suite import commit, machine

# Each row adds to the one before it where it names more modules, so the differences read as
# what one more module costs on top of those the runtime cannot do without.
SETS: list[tuple[str, ...]] = [
    (),
    ("json",),
    ("json", "_socket", "_signal"),
    ("json", "_socket", "_signal", "traceback"),
    ("json", "_socket", "_signal", "logging"),
    ("json", "socket", "signal", "logging", "traceback", "selectors", "site", "importlib"),
]
BESIDE = 5
IDLE = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)"


def pss_kb(python: str, modules: tuple[str, ...]) -> int:
    """The PSS of the first of BESIDE + 1 idle interpreters that imported `modules`."""
    code = "".join(f"import {module}\n" for module in modules) + IDLE
    processes = [
        subprocess.Popen([python, "-I", "-S", "-c", code], stdout=subprocess.PIPE)
        for _ in range(BESIDE + 1)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            process.stdout.readline()  # started and idle
        rollup = Path(f"/proc/{processes[0].pid}/smaps_rollup").read_text()
        return next(
            int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
        )
    finally:
        for process in processes:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default="/usr/bin/python3.11")
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}; {args.python} -I -S")
    bare = pss_kb(args.python, ())
    print("| modules | PSS | over the bare interpreter |")
    print("|---|---|---|")
    for modules in SETS:
        pss = pss_kb(args.python, modules)
        name = ", ".join(modules) or "(none)"
        print(f"| {name} | {pss / 1024:.2f} MB | {(pss - bare) / 1024:.2f} MB |")


if __name__ == "__main__":
    main()
