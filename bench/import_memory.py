"""What the runtime's imports cost in idle memory: the PSS of an idle `-I -S` interpreter that
imported a set of modules, beside five more like it (so that pages shared between
interpreters are shared as among sandboxes), against a bare one measured the same way.

    .venv/bin/python bench/import_memory.py [--python /usr/bin/python3.11]

Prints one Markdown row per set of modules: its PSS and what it adds to the bare interpreter.
"""

from __future__ import annotations

import argparse

from suite import commit, idle_interpreter_pss_kb, machine

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default="/usr/bin/python3.11")
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}; {args.python} -I -S")
    bare = idle_interpreter_pss_kb(args.python, beside=BESIDE)
    print("| modules | PSS | over the bare interpreter |")
    print("|---|---|---|")
    for modules in SETS:
        pss = idle_interpreter_pss_kb(args.python, modules, BESIDE)
        name = ", ".join(modules) or "(none)"
        print(f"| {name} | {pss / 1024:.2f} MB | {(pss - bare) / 1024:.2f} MB |")


if __name__ == "__main__":
    main()
