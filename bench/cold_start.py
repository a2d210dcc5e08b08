"""Cold start of a Python hello world on Lamina, as the client sees it: how much longer the
first invoke of a function takes than its warm invokes.

    .venv/bin/python bench/cold_start.py [--samples 60] [--pools 2,0] [--runtime python3.11]
        [--network outbound] [--isolation namespace|gvisor]

For each pool size in --pools (blank sandboxes per worker; 0 = every sandbox starts cold), it
starts `lamina up` (namespace backend, one worker, as root: hardened sandboxes; functions
tagged `lamina:network` = --network) on a loopback port, invokes one function of that mode
(not a sample: a worker fills only the default mode's key by itself) and then, per sample,
creates a new function, waits until it is Active and until the worker's pool is full again,
and invokes it once cold and, once the pool is full again, five times warm, over one
keep-alive connection. A sample's cold start is its first invoke's latency minus the median
of its warm ones.

The split, per sample: `runtime init` is the Init Duration of the REPORT line (from handing
the sandbox its function, or from starting it when there is no pool, until the runtime asks for
its first event: environment, sys.path, the handler's import); `handler` is the extra time of
the first invoke's Duration over the warm ones; `placement and start` is what remains:
counting, placement, the call to the worker, taking a blank sandbox and linking the code into
it (with no pool: starting bubblewrap and the interpreter happens inside runtime init).
Prints one Markdown row per pool size with p50 and p99 of each. `--isolation gvisor` tags the
functions `lamina:isolation` = gvisor; the worker then keeps gVisor blanks, asked for by the
warm-up function.

The floor, measured in the same run between samples: the interpreter started bare
(`-I -S -c pass`) and inside a bare bubblewrap with every namespace new.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from suite import commit, free_port, machine, wait_until_up
from warm_invoke import create_function, create_function_zip, signed

from lamina.worker.interpreters import discover

HELLO = "def handler(event, context):\n    return {'hello': 'world'}\n"
WARM_INVOKES = 5


def floor_commands(runtime: str) -> dict[str, list[str]]:
    """The runtime's interpreter started bare, and inside a bare bubblewrap."""
    python = [discover()[runtime].host_executable, "-I", "-S", "-c", "pass"]
    bwrap = shutil.which("bwrap") or "bwrap"
    return {
        "bare interpreter start": python,
        "interpreter in a bare bubblewrap": [
            bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc", *python,
        ],
    }  # fmt: skip


def bare_start_ms(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--pools", default="2,0", help="pool sizes to measure, comma-separated")
    parser.add_argument("--runtime", default=f"python3.{sys.version_info.minor}")
    parser.add_argument("--network", default="outbound", choices=("outbound", "none"))
    parser.add_argument("--isolation", default="namespace", choices=("namespace", "gvisor"))
    args = parser.parse_args()
    if args.samples < 30:
        parser.error("at least 30 samples, so that p99 means something")

    print(f"machine: {machine()}; commit {commit()}")
    print(f"runtime {args.runtime}, network {args.network}, {args.samples} new functions per "
          f"row, {args.isolation} backend\n")  # fmt: skip
    print("| blank sandboxes per worker | cold start p50 | p99 | runtime init p50 | p99 "
          "| handler p50 | p99 | placement and start p50 | p99 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    tags = {"lamina:network": args.network, "lamina:isolation": args.isolation}
    commands = floor_commands(args.runtime)
    floors: dict[str, list[float]] = {label: [] for label in commands}
    for pool in (int(size) for size in args.pools.split(",")):
        samples = measure(pool, args.samples, args.runtime, tags, commands, floors)
        cells = []
        for part in ("extra", "init", "handler", "rest"):
            values = [sample[part] for sample in samples]
            cells += [f"{percentile(values, 50):.1f} ms", f"{percentile(values, 99):.1f} ms"]
        print(f"| {pool} | " + " | ".join(cells) + " |", flush=True)
    for label, values in floors.items():
        print(f"floor, {label}: p50 {percentile(values, 50):.1f} ms, "
              f"p99 {percentile(values, 99):.1f} ms")  # fmt: skip


def measure(
    pool: int,
    count: int,
    runtime: str,
    tags: dict[str, str],
    commands: dict[str, list[str]],
    floors: dict[str, list[float]],
) -> list[dict[str, float]]:
    network, isolation = tags["lamina:network"], tags["lamina:isolation"]
    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    port = free_port()
    lamina = subprocess.Popen(
        [sys.executable, "-m", "lamina", "up", "--port", str(port), "--data-dir", data_dir,
         "--log-level", "warning", "--sandbox-pool", str(pool)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    code = create_function_zip(HELLO)
    samples = []
    try:
        wait_until_up(port, "/_lamina/health")
        connection = http.client.HTTPConnection("127.0.0.1", port)
        # A worker fills only the default network mode's key at start; a first function of
        # the other mode asks for its blanks and is not a sample.
        create_function(port, f"warm-up-{pool}", runtime, code, tags)
        invoke(connection, f"warm-up-{pool}")
        for index in range(count):
            name = f"cold-{pool}-{index}"
            create_function(port, name, runtime, code, tags)
            wait_for_pool(data_dir, pool, network, isolation)
            first = invoke(connection, name)
            # The blank taken is replaced after the first invoke: warm invokes that ran
            # meanwhile would share the CPU with its start and make the difference smaller.
            wait_for_pool(data_dir, pool, network, isolation)
            warm = [invoke(connection, name) for _ in range(WARM_INVOKES)]
            samples.append(split(first, warm))
            for label, command in commands.items():  # interleaved, as load comes and goes
                floors[label].append(bare_start_ms(command))
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)
    return samples


def wait_for_pool(data_dir: str, pool: int, network: str, isolation: str) -> None:
    """Until the worker has its blanks again (the previous sample took one), each with its
    runtime waiting for a function, as the worker's health reports."""
    deadline = time.monotonic() + 30
    while ready_blanks(data_dir, network, isolation) < pool:
        if time.monotonic() > deadline:
            raise RuntimeError("the pool never filled")
        time.sleep(0.02)


def ready_blanks(data_dir: str, network: str, isolation: str) -> int:
    """Blanks of `isolation` and `network` whose runtime has said it waits for a function."""
    connection = UnixConnection(str(Path(data_dir) / "workers" / "worker-1" / "api.sock"))
    try:
        connection.request("GET", "/v1/health")
        health = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return int(health["blank_sandboxes_ready"].get(f"{isolation}/{network}", 0))


class UnixConnection(http.client.HTTPConnection):
    """HTTP over the Unix socket a worker of `lamina up` serves its API on."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def invoke(connection: http.client.HTTPConnection, name: str) -> dict[str, float]:
    path = f"/2015-03-31/functions/{name}/invocations"
    headers = signed(connection.port, "POST", path, b"{}")
    headers["X-Amz-Log-Type"] = "Tail"
    started = time.perf_counter()
    connection.request("POST", path, body=b"{}", headers=headers)
    response = connection.getresponse()
    response.read()
    latency = (time.perf_counter() - started) * 1000
    if response.status != 200 or response.getheader("X-Amz-Function-Error"):
        raise RuntimeError(f"invoke of {name} failed: {response.status}")
    log = base64.b64decode(response.getheader("X-Amz-Log-Result", "")).decode()
    init = re.search(r"Init Duration: ([\d.]+) ms", log)
    return {
        "latency": latency,
        "duration": float(re.search(r"\tDuration: ([\d.]+) ms", log).group(1)),  # type: ignore[union-attr]
        "init": float(init.group(1)) if init else 0.0,
    }


def split(first: dict[str, float], warm: list[dict[str, float]]) -> dict[str, float]:
    extra = first["latency"] - statistics.median(w["latency"] for w in warm)
    handler = first["duration"] - statistics.median(w["duration"] for w in warm)
    return {
        "extra": extra,
        "init": first["init"],
        "handler": handler,
        "rest": extra - first["init"] - handler,
    }


def percentile(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
