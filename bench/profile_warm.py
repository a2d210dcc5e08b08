"""Where a warm invoke's CPU goes, in the frontend, the worker and the runtime in the sandbox.

    .venv/bin/python bench/profile_warm.py [--seconds 20] [--clients 1] [--out docs/profiles]

Starts Lamina with a no-op Python function, drives warm invokes at it (C clients, each
sequential on one keep-alive connection) and samples each of the three processes with py-spy
(`pip install py-spy`; needs root or ptrace rights). Writes, per process, the functions with
the most samples holding the GIL (running Python, not waiting), by self and inclusive
time, and the share per package, as text in
`--out`, and prints where the invoke rate stood during the profile.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from suite import ROOT, cmdline, commit, descendants, lamina, machine
from warm_invoke import INVOKE_PATH, create_noop, latency

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:]*)(?::\d+)?\)$")
TOP = 30


def processes(frontend: int) -> dict[str, int]:
    """The frontend, the worker and the runtime (the Python process inside the sandbox)."""
    found = {"frontend": frontend}
    for pid in descendants(frontend):
        line = cmdline(pid)
        if " lamina worker " in f" {line} ":
            found["worker"] = pid
        elif "bootstrap.py" in line and "bwrap" not in line and "bwrap" in cmdline(parent(pid)):
            found["runtime"] = pid  # what it forks is a child of the runtime, not bwrap
    return found


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def record(pid: int, seconds: float, rate: int, output: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate",
         str(rate), "--format", "raw", "--gil", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def package(path: str) -> str:
    """A frame's file as a package: py-spy names site-packages files from their package."""
    parts = Path(path).parts
    if len(parts) > 1 and parts[0] in ("lamina", "runtime"):
        return "/".join(parts[:2]) if len(parts) > 2 else parts[0]
    if len(parts) > 1:
        return parts[0]
    return f"stdlib {path}"


def summarise(raw: Path, label: str, seconds: float, rate: int, invokes: int) -> str:
    possible = int(seconds * rate)
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if FRAME.match(f)]
        if not frames:
            continue
        total += count
        leaf = FRAME.match(frames[-1])
        assert leaf is not None
        self_time[frames[-1]] += count
        packages[package(leaf["file"])] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(count: int) -> str:
        return f"{100 * count / max(total, 1):5.1f}%"

    lines = [
        f"# {label}: {total} samples holding the GIL of {possible} taken over {seconds:.0f} s "
        f"({100 * total / possible:.0f}% of one core), {invokes} invokes; shares below are of "
        "the samples holding the GIL",
        "",
        "## Self time by package",
        *(f"{share(c)}  {name}" for name, c in packages.most_common(TOP)),
        "",
        "## Self time by function",
        *(f"{share(c)}  {name}" for name, c in self_time.most_common(TOP)),
        "",
        "## Inclusive time by function",
        *(f"{share(c)}  {name}" for name, c in inclusive.most_common(TOP)),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--rate", type=int, default=500, help="samples per second")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "profiles")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="lamina-profile-"))
    header = f"machine: {machine()}; commit {commit()}; {args.clients} sequential client(s)"
    with lamina() as platform:
        create_noop(platform.port)
        latency(platform.port, INVOKE_PATH, 300)
        targets = processes(platform.process.pid)
        done: list[int] = []
        stop = threading.Event()

        def drive() -> None:
            while not stop.is_set():
                done.append(len(latency(platform.port, INVOKE_PATH, 100)))

        spies = {name: record(pid, args.seconds, args.rate, scratch / name) for name, pid in
                 targets.items()}  # fmt: skip
        threads = [threading.Thread(target=drive) for _ in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for spy in spies.values():
            spy.wait()
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

    invokes = sum(done)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in spies:
        raw = scratch / name
        if not raw.exists():
            print(f"{name}: py-spy recorded nothing (ptrace rights?)")
            continue
        text = summarise(raw, name, args.seconds, args.rate, invokes)
        (args.out / f"warm_{name}.txt").write_text(f"{header}\n\n{text}")
    shutil.rmtree(scratch, ignore_errors=True)
    print(header)
    print(f"{invokes} invokes in {elapsed:.1f} s: {invokes / elapsed:.0f}/s while sampled; "
          f"profiles in {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
