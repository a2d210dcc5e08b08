"""What a sandbox costs per network mode: the cold start a client sees on top of a warm invoke,
and the memory (PSS) an idle warm sandbox holds.

    .venv/bin/python bench/sandbox_cost.py [--functions 30] [--runtime python3.11]

For each mode (`lamina:network` = outbound, none), each of N fresh functions is invoked twice:
the first invoke starts its sandbox, the second is warm; the extra time is their difference.
Then, with every sandbox idle, the PSS of all the processes in each sandbox's cgroup is
summed (from /proc/PID/smaps_rollup). The floor, in the same run: the PSS of a bare idle
`python3.11 -I -S` process, the interpreter every sandbox runs. Needs root, as Lamina's
sandboxes do.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import warm_invoke as lamina_bench
from suite import commit, free_port, machine, wait_until_up

from lamina.sandbox import leftovers

HELLO = "def handler(event, context):\n    return {'hello': 'world'}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=30)
    parser.add_argument("--runtime", default=f"python3.{sys.version_info.minor}")
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    for mode in ("outbound", "none"):
        extra_ms, pss_kb = measure(mode, args.functions, args.runtime)
        extra_ms.sort()
        p99 = extra_ms[min(len(extra_ms) - 1, int(len(extra_ms) * 0.99))]
        mean_pss = statistics.mean(pss_kb)
        print(
            f"{mode}: cold start extra p50 {statistics.median(extra_ms):.1f} ms, "
            f"p99 {p99:.1f} ms; idle sandbox PSS mean {mean_pss / 1024:.1f} MiB "
            f"({1024 * 1024 / mean_pss:.0f} per GiB) over {len(pss_kb)} sandboxes"
        )
    floor = bare_interpreter_pss_kb()
    print(f"floor: a bare idle python3.11 -I -S holds {floor / 1024:.1f} MiB PSS "
          f"({1024 * 1024 / floor:.0f} per GiB)")  # fmt: skip


def bare_interpreter_pss_kb() -> int:
    idle = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)"
    process = subprocess.Popen(
        ["/usr/bin/python3.11", "-I", "-S", "-c", idle], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # started and idle
        rollup = Path(f"/proc/{process.pid}/smaps_rollup").read_text()
        return next(
            int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:")
        )
    finally:
        process.kill()
        process.wait()


def measure(mode: str, functions: int, runtime: str) -> tuple[list[float], list[int]]:
    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    port = free_port()
    lamina = lamina_bench.start_lamina(port, data_dir)
    extra_ms = []
    try:
        wait_until_up(port, "/_lamina/health")
        client = lamina_bench.boto3_lambda(port)
        code = lamina_bench.create_function_zip(HELLO)
        for index in range(functions):
            name = f"{mode}-{index}"
            lamina_bench.create_and_wait(
                client, name, runtime, code, Tags={"lamina:network": mode}
            )
            cold = timed(client, name)
            warm = timed(client, name)
            extra_ms.append(cold - warm)
        name = leftovers.worker_name("worker-1", Path(data_dir) / "workers" / "worker-1")
        pss_kb = sandbox_pss(name)
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    return extra_ms, pss_kb


def timed(client: object, name: str) -> float:
    started = time.perf_counter()
    client.invoke(FunctionName=name)  # type: ignore[attr-defined]
    return (time.perf_counter() - started) * 1000


def sandbox_pss(worker: str) -> list[int]:
    """PSS in KiB of each sandbox of the worker, summed over the processes in its cgroup."""
    per_sandbox: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
            rollup = (entry / "smaps_rollup").read_text()
        except OSError:
            continue
        marker = f"/{worker}/"
        if marker not in cgroups:
            continue
        sandbox = cgroups.split(marker, 1)[1].split("\n", 1)[0]
        pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        per_sandbox[sandbox] = per_sandbox.get(sandbox, 0) + pss
    return list(per_sandbox.values())


if __name__ == "__main__":
    main()
