"""Warm round trip through the Runtime API: Lamina's Python runtime next to awslambdaric.

    .venv/bin/python bench/runtime_api.py [--requests 2000]

Starts `lamina up` with a fresh data directory and, in the same run, three functions with the
same no-op handler:

- `python3.X`: Lamina's own Python runtime, reaching the Runtime API over its Unix socket;
- the same runtime started by a custom runtime's bootstrap (`provided.al2023`), so it reaches
  the Runtime API through AWS_LAMBDA_RUNTIME_API (127.0.0.1:9001, which the worker serves
  inside the sandbox's network namespace);
- awslambdaric 4.2.2, vendored in the zip with `pip install -t` (once, into .bench-cache),
  started by `python3 -m awslambdaric index.handler`: AWS's client, over the same address.

Each is warmed, then invoked sequentially on one keep-alive connection, in rounds that take
turns between the three so that background load on the machine falls on all of them alike;
the table gives the client-side latency of a whole warm invoke and the Init Duration of its
cold start.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import re
import shutil
import signal
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

from suite import free_port, percentile, vendored, wait_until_up
from warm_invoke import create_function, latency, signed, start_lamina

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = "/usr/bin/python3"
RIC = "awslambdaric==4.2.2"
HANDLER = "def handler(event, context):\n    return None\n"
BUILTIN_OVER_TCP = "#!/bin/sh\nexec python3 -I -S /var/runtime/bootstrap.py\n"
RIC_BOOTSTRAP = "#!/bin/sh\nexec python3 -m awslambdaric index.handler\n"


def vendored_ric() -> Path:
    return vendored(RIC, SYSTEM_PYTHON)


def package(files: dict[str, str], tree: Path | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(tree.rglob("*")) if tree else []:
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(tree).as_posix())
        for name, text in files.items():
            entry = zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0))
            entry.external_attr = (0o100755 if name == "bootstrap" else 0o100644) << 16
            archive.writestr(entry, text)
    return buffer.getvalue()


def init_duration(port: int, name: str) -> float:
    """The Init Duration of the function's first (cold) invoke, from its REPORT line."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    path = f"/2015-03-31/functions/{name}/invocations"
    headers = {**signed(port, "POST", path, b"{}"), "X-Amz-Log-Type": "Tail"}
    connection.request("POST", path, body=b"{}", headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200 or response.getheader("X-Amz-Function-Error"):
        raise RuntimeError(f"{name} failed its first invoke: {response.status}")
    log = base64.b64decode(response.getheader("X-Amz-Log-Result") or "").decode()
    found = re.search(r"Init Duration: ([\d.]+) ms", log)
    return float(found.group(1)) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    python_runtime = f"python3.{sys.version_info.minor}"
    functions = {
        f"Lamina's runtime ({python_runtime}, Unix socket)": (
            "builtin", python_runtime, package({"index.py": HANDLER})),
        "Lamina's runtime (provided.al2023, AWS_LAMBDA_RUNTIME_API)": (
            "builtin-tcp", "provided.al2023",
            package({"index.py": HANDLER, "bootstrap": BUILTIN_OVER_TCP})),
        "awslambdaric 4.2.2 (provided.al2023, AWS_LAMBDA_RUNTIME_API)": (
            "ric", "provided.al2023",
            package({"index.py": HANDLER, "bootstrap": RIC_BOOTSTRAP}, vendored_ric())),
    }  # fmt: skip

    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    port = free_port()
    lamina = start_lamina(port, data_dir)
    rows: dict[str, tuple[float, list[float]]] = {}
    try:
        wait_until_up(port, "/_lamina/health")
        for label, (name, runtime, code) in functions.items():
            create_function(port, name, runtime, code)
            rows[label] = (init_duration(port, name), [])
            latency(port, f"/2015-03-31/functions/{name}/invocations", 200)
        for _ in range(args.rounds):
            for label, (name, _, _) in functions.items():
                path = f"/2015-03-31/functions/{name}/invocations"
                rows[label][1].extend(latency(port, path, args.requests // args.rounds))
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"{args.requests} sequential warm invokes each, one keep-alive connection")
    print("| runtime | p50 ms | p99 ms | mean ms | Init Duration ms |")
    print("|---|---|---|---|---|")
    for label, (init, samples) in rows.items():
        print(
            f"| {label} | {statistics.median(samples):.3f} | {percentile(samples, 0.99):.3f} "
            f"| {statistics.fmean(samples):.3f} | {init:.1f} |"
        )


if __name__ == "__main__":
    main()
