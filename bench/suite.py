"""What every benchmark of the suite shares: a Lamina under test, the machine, the figures.

A figure is a median over repeated runs with its p99; the machine and the load generator's own
CPU are printed with it, so ratios hold on a noisy shared host.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lamina.auth.platform import TOKEN_FILE, TOKEN_HEADER

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench-cache"
TICKS = os.sysconf("SC_CLK_TCK")
# The floor for one HTTP exchange here: an aiohttp server answering `null`, nothing else.
BASELINE_SERVER = """
import sys
from aiohttp import web

async def reply(request):
    await request.read()
    return web.Response(body=b"null", content_type="application/json")

app = web.Application()
app.router.add_post("/{tail:.*}", reply)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int, path: str, method: str = "GET") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request(method, path, body=b"{}" if method == "POST" else None)
            if connection.getresponse().status < 500:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Lamina:
    """A `lamina up` started for a benchmark, with its data directory and process."""

    port: int
    data_dir: str
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The frontend and every process below it (workers, bubblewrap, runtimes)."""
        return [self.process.pid, *descendants(self.process.pid)]

    def roles(self) -> dict[str, list[int]]:
        """The processes by role: the frontend, the workers, the sandboxes (bubblewrap, the
        runtime and what it forked)."""
        workers = self.worker_pids()
        sandboxes = [p for p in descendants(self.process.pid) if p not in workers]
        return {"frontend": [self.process.pid], "worker": workers, "sandboxes": sandboxes}

    def state(self) -> dict:
        """Lamina's own report (`/_lamina/v1/state`), asked with the platform token."""
        token = (Path(self.data_dir) / TOKEN_FILE).read_text().strip()
        request = urllib.request.Request(f"{self.url}/_lamina/v1/state")
        request.add_header(TOKEN_HEADER, token)
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.load(reply)

    def worker_pids(self) -> list[int]:
        return [p for p in descendants(self.process.pid) if "worker" in cmdline(p)]


@contextlib.contextmanager
def lamina(*extra: str, cpus: str | None = None) -> Iterator[Lamina]:
    """`lamina up` on a free loopback port with a fresh data directory; stopped on exit."""
    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    port = free_port()
    command = [sys.executable, "-m", "lamina", "up", "--port", str(port),
               "--data-dir", data_dir, "--log-level", "warning", *extra]  # fmt: skip
    process = subprocess.Popen(pinned(command, cpus), stdout=subprocess.DEVNULL)
    try:
        wait_until_up(port, "/_lamina/health")
        yield Lamina(port, data_dir, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def baseline(cpus: str | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The bare HTTP reply server on a free loopback port: (port, process)."""
    port = free_port()
    process = subprocess.Popen(pinned([sys.executable, "-c", BASELINE_SERVER, str(port)], cpus))
    try:
        wait_until_up(port, "/", method="POST")
        yield port, process
    finally:
        process.terminate()
        process.wait(30)


def vendored(requirement: str, python: str) -> Path:
    """`requirement` installed with pip for the Python at `python`, in a cached directory,
    as a Lambda user vendors a dependency into a function's zip."""
    version = subprocess.run(
        [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    name = "".join(c if c.isalnum() or c == "." else "-" for c in requirement).replace("--", "-")
    target = CACHE / f"{name}-py{version}"
    if not (target / ".complete").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
             "--python-version", version, "--only-binary=:all:", requirement],
            check=True,
        )  # fmt: skip
        (target / ".complete").touch()
    return target


def pinned(command: list[str], cpus: str | None) -> list[str]:
    """`command` run on the given CPUs (taskset), or anywhere when None."""
    if cpus is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", cpus, *command]


def pin_self(cpus: str | None) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})


def split_cpus(requested: bool) -> tuple[str | None, str | None]:
    """(platform CPUs, load generator CPUs): the last core for the load generator when asked
    and the machine has more than one, else no pinning."""
    count = os.cpu_count() or 1
    if not requested or count < 2:
        return None, None
    return ",".join(str(c) for c in range(count - 1)), str(count - 1)


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                pending.extend(children)
    return found


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU of the given processes, and of their reaped children."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
    return total / TICKS


def available_mb() -> int:
    """The host's MemAvailable in MB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load} at the start"
    )


def commit() -> str:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "lamina"])
    return found.stdout.strip() + ("+changes" if dirty.returncode else "")


@dataclass(frozen=True)
class Figure:
    """The median over runs of one measurement, and the median of its runs' p99."""

    median: float
    p99: float
    runs: int

    @classmethod
    def of_runs(cls, runs: list[list[float]]) -> Figure:
        medians = [statistics.median(r) for r in runs if r]
        tails = [percentile(r, 0.99) for r in runs if r]
        if not medians:
            return cls(float("nan"), float("nan"), 0)
        return cls(statistics.median(medians), statistics.median(tails), len(medians))

    @classmethod
    def of_values(cls, values: list[float]) -> Figure:
        if not values:
            return cls(float("nan"), float("nan"), 0)
        return cls(statistics.median(values), percentile(values, 0.99), len(values))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pss_kb(pid: int | str) -> int:
    """The proportional set size of a process, in kB (OSError once it is gone)."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))


def idle_interpreter_pss_kb(python: str, modules: tuple[str, ...] = (), beside: int = 0) -> int:
    """The PSS of an idle `python -I -S` that imported `modules`, measured while `beside`
    more like it run (pages shared between interpreters are then shared as among sandboxes)."""
    idle = "import sys, time; sys.stdout.write('up\\n'); sys.stdout.flush(); time.sleep(60)"
    code = "".join(f"import {module}\n" for module in modules) + idle
    processes = [
        subprocess.Popen([python, "-I", "-S", "-c", code], stdout=subprocess.PIPE)
        for _ in range(beside + 1)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            process.stdout.readline()  # started and idle
        return pss_kb(processes[0].pid)
    finally:
        for process in processes:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()
