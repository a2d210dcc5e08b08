"""Where sandbox creation's CPU goes during a burst of first invokes.

    .venv/bin/python bench/profile_burst.py [--invokes 300] [--sleep-ms 200]
        [--worker-memory 131072] [--out docs/profiles]

Starts Lamina, creates one function whose handler sleeps `--sleep-ms`, and sends `--invokes`
concurrent first invokes (as `bench/burst.py` does) while py-spy samples the frontend and the
worker. Prints the CPU seconds per sandbox created, by process role: the frontend, the worker,
and everything below the worker (bubblewrap, slirp4netns, the runtimes and their children,
counted as their processes exit or from /proc while they live), and writes the py-spy
summaries as `burst_frontend.txt` and `burst_worker.txt` in `--out`.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import tempfile
import time
from pathlib import Path

import uvloop
from burst import HANDLER, fire
from profile_warm import processes, record, summarise
from suite import ROOT, TICKS, commit, cpu_seconds, descendants, lamina, machine, table
from warm_invoke import create_function, create_function_zip

RATE = 200  # samples per second
SECONDS = 60  # py-spy stops at this, or when the burst has ended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invokes", type=int, default=300)
    parser.add_argument("--sleep-ms", type=float, default=200.0)
    parser.add_argument("--worker-memory", type=int, default=131072)
    parser.add_argument("--memory-budget-mb", type=int, default=10000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "profiles")
    args = parser.parse_args()

    header = f"machine: {machine()}; commit {commit()}; {args.invokes} concurrent first invokes"
    scratch = Path(tempfile.mkdtemp(prefix="lamina-profile-"))
    with lamina("--worker-memory", str(args.worker_memory)) as platform:
        code = create_function_zip(HANDLER.format(seconds=args.sleep_ms / 1000))
        create_function(platform.port, "burst", "python3.11", code)
        targets = processes(platform.process.pid)
        worker = targets["worker"]
        before = {"frontend": cpu_seconds([platform.process.pid]), "worker": _worker_cpu(worker)}
        below_before = _below_cpu(worker)
        spies = {
            name: record(targets[name], SECONDS, RATE, scratch / name)
            for name in ("frontend", "worker")
        }
        time.sleep(0.5)  # py-spy attached
        began = time.perf_counter()
        burst = uvloop.run(fire(platform.port, ["burst"], args.invokes, args.memory_budget_mb))
        elapsed = time.perf_counter() - began
        spent = {
            "frontend": cpu_seconds([platform.process.pid]) - before["frontend"],
            "worker": _worker_cpu(worker) - before["worker"],
            "below the worker": _below_cpu(worker) - below_before,
        }
        created = platform.state()["scaling"]["created"]
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled when interrupted
            spy.wait()

    args.out.mkdir(parents=True, exist_ok=True)
    for name in spies:
        raw = scratch / name
        if raw.exists():
            text = summarise(raw, name, elapsed, RATE, args.invokes)
            (args.out / f"burst_{name}.txt").write_text(f"{header}\n\n{text}")
    shutil.rmtree(scratch, ignore_errors=True)
    print(header)
    print(f"{len(burst.latencies_ms)} answered in {elapsed:.1f} s, {len(burst.errors)} errors, "
          f"{created} sandboxes created; profiles in {args.out}")  # fmt: skip
    rows = [[role, f"{seconds:.1f}", f"{seconds / max(created, 1) * 1000:.1f}"]
            for role, seconds in spent.items()]  # fmt: skip
    print(table(["process", "CPU s", "CPU ms per sandbox created"], rows))


def _worker_cpu(worker: int) -> float:
    """The worker process's own CPU, without its reaped children."""
    fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _below_cpu(worker: int) -> float:
    """CPU of everything below the worker: its reaped children and the live processes."""
    fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / TICKS
    return reaped + cpu_seconds(descendants(worker))


if __name__ == "__main__":
    main()
