"""Memory of idle warm sandboxes: the PSS of every process of each sandbox, and how many such
sandboxes one GB of PSS holds.

    .venv/bin/python bench/density.py [--sandboxes 50] [--runtime python3.11]
        [--network outbound]

Starts `lamina up` (namespace backend, one worker, as root: hardened sandboxes; no pool of
blank sandboxes so that only functions' sandboxes run), creates that many Python hello-world
functions tagged `lamina:network` = --network and invokes each once, so each has one idle
warm sandbox. Then, for each sandbox, it sums the Pss of /proc/PID/smaps_rollup over every
process in the sandbox's cgroup: bubblewrap outside and its reaper (pid 1 inside), the
runtime, any process it forked (none for a hello world: the worker serves the Runtime API
inside the sandbox) and, under `outbound`, slirp4netns. PSS shares each page among the
processes that map it, so the figure depends on how many sandboxes run: it is measured with
all of them running. Prints per-process and per-sandbox figures and sandboxes per GB, and the
floor measured in the same run, beside the same sandboxes: the PSS of a bare idle
interpreter (`-I -S`).
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from suite import commit, free_port, idle_interpreter_pss_kb, machine, pss_kb, wait_until_up
from warm_invoke import create_function, create_function_zip, signed

from lamina.sandbox import leftovers
from lamina.worker.interpreters import discover

HELLO = "def handler(event, context):\n    return {'hello': 'world'}\n"
ROLES = ("bubblewrap", "runtime", "forked by the runtime", "slirp4netns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandboxes", type=int, default=50)
    parser.add_argument("--runtime", default=f"python3.{sys.version_info.minor}")
    parser.add_argument("--network", default="outbound", choices=("outbound", "none"))
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    port = free_port()
    lamina = subprocess.Popen(
        [sys.executable, "-m", "lamina", "up", "--port", str(port), "--data-dir", data_dir,
         "--log-level", "warning", "--sandbox-pool", "0",
         "--worker-memory", str(128 * (args.sandboxes + 8))],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(port, "/_lamina/health")
        code = create_function_zip(HELLO)
        for index in range(args.sandboxes):
            name = f"idle-{index}"
            create_function(port, name, args.runtime, code, {"lamina:network": args.network})
            invoke(port, name)
        worker = leftovers.worker_name("worker-1", Path(data_dir) / "workers" / "worker-1")
        sandboxes = list(sandbox_pss(worker).values())
        # Beside the sandboxes, so that the floor's pages are shared as theirs are.
        python = discover()[args.runtime].host_executable
        floor = idle_interpreter_pss_kb(python)
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    report(args.runtime, args.network, sandboxes)
    print(f"floor: a bare idle {python} -I -S holds {floor / 1024:.2f} MB PSS "
          f"({1024 * 1024 / floor:.0f} per GB)")  # fmt: skip


def invoke(port: int, name: str) -> None:
    path = f"/2015-03-31/functions/{name}/invocations"
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("POST", path, body=b"{}", headers=signed(port, "POST", path, b"{}"))
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"invoke of {name} failed: {response.status}")


def sandbox_pss(worker: str) -> dict[str, dict[str, int]]:
    """PSS in kB of each process of each sandbox of the worker, by role, found by cgroup."""
    marker = f"/{worker}/"
    found: dict[str, dict[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroups = (entry / "cgroup").read_text()
            pss = pss_kb(entry.name)
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parent_command = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")[0]
        except (OSError, ValueError):
            continue
        if marker not in cgroups:
            continue
        sandbox = cgroups.split(marker, 1)[1].split("\n", 1)[0]
        role = role_of(command, parent_command)
        roles = found.setdefault(sandbox, dict.fromkeys(ROLES, 0))
        roles[role] += pss
    return found


def role_of(command: bytes, parent_command: bytes) -> str:
    if command.endswith(b"slirp4netns"):
        return "slirp4netns"
    if command.endswith(b"bwrap"):
        return "bubblewrap"
    # The runtime's parent is bubblewrap's reaper; what it forked has the runtime's command.
    return "runtime" if parent_command.endswith(b"bwrap") else "forked by the runtime"


def report(runtime: str, network: str, sandboxes: list[dict[str, int]]) -> None:
    totals = [sum(s.values()) for s in sandboxes]
    mean_mb = statistics.mean(totals) / 1024
    print(f"runtime {runtime}, network {network}, {len(sandboxes)} idle warm sandboxes "
          "measured together\n")  # fmt: skip
    print("| process | mean PSS |")
    print("|---|---|")
    for role in ROLES:
        print(f"| {role} | {statistics.mean(s[role] for s in sandboxes) / 1024:.2f} MB |")
    print(f"| whole sandbox | {mean_mb:.2f} MB (median {statistics.median(totals) / 1024:.2f}) |")
    print(f"\nidle warm sandboxes per GB of PSS: {1024 / mean_mb:.0f}")


if __name__ == "__main__":
    main()
