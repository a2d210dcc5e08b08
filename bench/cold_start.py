"""Cold start of a Python function on Lamina: the Init Duration Lamina reports, and the
client-side latency of the first invoke of each new function.

    .venv/bin/python bench/cold_start.py [--functions 30] [--runtime python3.11]
        [--isolation namespace|gvisor]

Each sample is a fresh function, so its first invoke has to start a sandbox (bubblewrap or
gVisor, interpreter, Lamina's runtime, the handler module import); a second, warm, invoke
follows, and the first invoke's extra time over it is the client-visible cost of the cold
start. `--isolation` tags every function with `lamina:isolation`. Prints medians, p90, p99.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time

from suite import free_port, wait_until_up
from warm_invoke import boto3_lambda, create_and_wait, create_function_zip, start_lamina


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=30)
    parser.add_argument("--runtime", default=f"python3.{sys.version_info.minor}")
    parser.add_argument("--isolation", default=None, help="the lamina:isolation tag, if any")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    port = free_port()
    lamina = start_lamina(port, data_dir)
    init_ms, first_ms, extra_ms = [], [], []
    tags = {"lamina:isolation": args.isolation} if args.isolation else {}
    try:
        wait_until_up(port, "/_lamina/health")
        client = boto3_lambda(port)
        code = create_function_zip("def handler(event, context):\n    return None\n")
        for index in range(args.functions):
            name = f"cold-{index}"
            create_and_wait(client, name, args.runtime, code, Tags=tags)
            started = time.perf_counter()
            response = client.invoke(FunctionName=name, LogType="Tail")
            first_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.invoke(FunctionName=name)
            extra_ms.append(first_ms[-1] - (time.perf_counter() - started) * 1000)
            log = base64.b64decode(response["LogResult"]).decode()
            init_ms.append(float(re.search(r"Init Duration: ([\d.]+) ms", log).group(1)))
    finally:
        lamina.send_signal(signal.SIGTERM)
        lamina.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    def summary(samples: list[float]) -> str:
        ordered = sorted(samples)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        p99 = ordered[int(0.99 * (len(ordered) - 1))]
        return f"median {statistics.median(samples):.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms"

    print(
        json.dumps({"runtime": args.runtime, "isolation": args.isolation, "samples": len(init_ms)})
    )
    print(f"Init Duration (sandbox start to first event request): {summary(init_ms)}")
    print(f"first invoke seen by the client (boto3): {summary(first_ms)}")
    print(f"first invoke's extra time over the warm one after it: {summary(extra_ms)}")


if __name__ == "__main__":
    main()
