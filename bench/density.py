"""Memory of idle warm sandboxes: the PSS of every process of each sandbox, and how many such
sandboxes one GB of PSS holds.

    .venv/bin/python bench/density.py [--sandboxes 50] [--runtime python3.11]

Starts `lamina up` (namespace backend, one worker, no pool of blank sandboxes so that only
functions' sandboxes run), creates that many Python hello-world functions and invokes each
once, so each has one idle warm sandbox. Then, for each sandbox, it sums the Pss of
/proc/PID/smaps_rollup over all its processes: bubblewrap outside, bubblewrap's reaper inside
(pid 1 of the sandbox), the runtime, and its Runtime API relay. PSS shares each page among the
processes that map it, so the figure depends on how many sandboxes run: it is measured with
all of them running. Prints per-process and per-sandbox figures and sandboxes per GB.
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

from warm_invoke import create_function, create_function_zip, free_port, signed, wait_until_up

HELLO = "def handler(event, context):\n    return {'hello': 'world'}\n"
ROLES = ("bubblewrap", "reaper", "runtime", "relay")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandboxes", type=int, default=50)
    parser.add_argument("--runtime", default=f"python3.{sys.version_info.minor}")
    args = parser.parse_args()

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
            create_function(port, name, args.runtime, code)
            invoke(port, name)
        sandboxes = [tree_pss(pid) for pid in sandbox_roots(data_dir)]
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    report(args.runtime, sandboxes)


def invoke(port: int, name: str) -> None:
    path = f"/2015-03-31/functions/{name}/invocations"
    connection = http.client.HTTPConnection("127.0.0.1", port)
    connection.request("POST", path, body=b"{}", headers=signed(port, "POST", path, b"{}"))
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"invoke of {name} failed: {response.status}")


def sandbox_roots(data_dir: str) -> list[int]:
    """The outer bubblewrap process of every sandbox of this platform."""
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline[0].endswith(b"bwrap") and any(data_dir.encode() in a for a in cmdline):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if not (Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")[0]).endswith(
                b"bwrap"
            ):
                roots.append(int(entry.name))
    return roots


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def pss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss for {pid}")


def tree_pss(root: int) -> dict[str, int]:
    """PSS in kB of each process of one sandbox, by role."""
    (reaper,) = children(root)
    (runtime,) = children(reaper)
    relays = children(runtime)
    return {
        "bubblewrap": pss_kb(root),
        "reaper": pss_kb(reaper),
        "runtime": pss_kb(runtime),
        "relay": sum(pss_kb(pid) for pid in relays),
    }


def report(runtime: str, sandboxes: list[dict[str, int]]) -> None:
    totals = [sum(s.values()) for s in sandboxes]
    mean_mb = statistics.mean(totals) / 1024
    print(f"runtime {runtime}, {len(sandboxes)} idle warm sandboxes measured together\n")
    print("| process | mean PSS |")
    print("|---|---|")
    for role in ROLES:
        print(f"| {role} | {statistics.mean(s[role] for s in sandboxes) / 1024:.2f} MB |")
    print(f"| whole sandbox | {mean_mb:.2f} MB (median {statistics.median(totals) / 1024:.2f}) |")
    print(f"\nidle warm sandboxes per GB of PSS: {1024 / mean_mb:.0f}")


if __name__ == "__main__":
    main()
