"""Warm invoke overhead: Lamina's latency next to a bare HTTP reply on the same machine.

    .venv/bin/python bench/warm_invoke.py [--requests 5000] [--rounds 10] [--pin]

Starts `lamina up` (default configuration) on a free loopback port with a fresh data
directory, creates a no-op Python function and warms it, then measures, in the same run and
with the same client code (one client, sequential requests on one keep-alive connection,
each signed with SigV4): Lamina's Invoke API, the same through an alias that sends 10% of the
invokes to a second version (the cost of resolving and routing), and a bare aiohttp server
that answers `null` on loopback (the floor for one HTTP exchange with this client here).
The three are measured in interleaved rounds; each figure is the median over rounds, with
the CPU of the target's processes and of the load generator per request. `--pin` puts the
load generator on the last core and the servers on the others. The other benchmarks of the
suite use this module's helpers.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import statistics
import subprocess
import sys
import time
import zipfile
from typing import Any

import boto3
from suite import (
    Figure,
    baseline,
    commit,
    cpu_seconds,
    lamina,
    machine,
    own_cpu_seconds,
    pin_self,
    split_cpus,
    table,
)

from lamina.auth.signing import signed_headers

INVOKE_PATH = "/2015-03-31/functions/noop/invocations"
ALIAS_PATH = f"{INVOKE_PATH}?Qualifier=live"


def signed(port: int, method: str, path: str, body: bytes) -> dict[str, str]:
    """Headers signing the request with the development key, as every API request must be."""
    url = f"http://127.0.0.1:{port}{path}"
    return signed_headers(method, url, body, ("test", "test"), "us-east-1")


def create_function_zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


def create_function(
    port: int, name: str, runtime: str, code: bytes, tags: dict[str, str] | None = None
) -> None:
    """Create a function through the Lambda API and wait until it is Active."""
    document = {
        "FunctionName": name,
        "Runtime": runtime,
        "Role": "arn:aws:iam::000000000000:role/bench",
        "Handler": "index.handler",
        "Code": {"ZipFile": base64.b64encode(code).decode()},
    }
    if tags:
        document["Tags"] = tags
    body = json.dumps(document).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port)
    create = "/2015-03-31/functions"
    connection.request("POST", create, body=body, headers=signed(port, "POST", create, body))
    response = connection.getresponse()
    if response.status != 201:
        raise RuntimeError(response.read().decode())
    response.read()
    for _ in range(200):
        path = f"/2015-03-31/functions/{name}/configuration"
        connection.request("GET", path, headers=signed(port, "GET", path, b""))
        if json.loads(connection.getresponse().read())["State"] == "Active":
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} never became Active")


def create_noop(port: int) -> None:
    code = create_function_zip("def handler(event, context):\n    return None\n")
    create_function(port, "noop", f"python3.{sys.version_info.minor}", code)


def boto3_lambda(port: int) -> Any:
    """A boto3 Lambda client of the development key, for Lamina on a loopback port."""
    return boto3.client(
        "lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )  # fmt: skip


def create_and_wait(client: Any, name: str, runtime: str, code: bytes, **extra: Any) -> None:
    """CreateFunction through boto3, then wait until the function is Active."""
    client.create_function(
        FunctionName=name, Runtime=runtime, Handler="index.handler",
        Role="arn:aws:iam::000000000000:role/bench", Code={"ZipFile": code}, **extra,
    )  # fmt: skip
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1})


def start_lamina(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    """`lamina up` on a loopback port, quiet but for warnings."""
    return subprocess.Popen(
        [sys.executable, "-m", "lamina", "up", "--port", str(port),
         "--data-dir", data_dir, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def call(connection: http.client.HTTPConnection, method: str, path: str, body: dict) -> dict:
    data = json.dumps(body).encode()
    connection.request(
        method, path, body=data, headers=signed(connection.port, method, path, data)
    )
    response = connection.getresponse()
    answer = json.loads(response.read() or b"{}")
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {answer}")
    return answer


def create_weighted_alias(port: int) -> None:
    """Versions 1 and 2 of `noop`, and alias `live` -> 1 with 10% of the invokes on 2."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    function = "/2015-03-31/functions/noop"
    call(connection, "POST", f"{function}/versions", {})
    call(connection, "PUT", f"{function}/configuration", {"Description": "second"})
    for _ in range(200):
        if call(connection, "GET", f"{function}/configuration", {})["LastUpdateStatus"] != (
            "InProgress"
        ):
            break
        time.sleep(0.05)
    call(connection, "POST", f"{function}/versions", {})
    weights = {"AdditionalVersionWeights": {"2": 0.1}}
    alias = {"Name": "live", "FunctionVersion": "1", "RoutingConfig": weights}
    call(connection, "POST", f"{function}/aliases", alias)


def latency(port: int, path: str, count: int) -> list[float]:
    """Sequential requests on one keep-alive connection; milliseconds each."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    for _ in range(count):
        headers = signed(port, "POST", path, b"{}")
        started = time.perf_counter()
        connection.request("POST", path, body=b"{}", headers=headers)
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    return samples


def measure(
    port: int, path: str, count: int, groups: dict[str, list[int]]
) -> tuple[list[float], dict[str, float]]:
    """Sequential invokes: their latencies (ms) and the CPU µs per invoke of each group."""
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    samples = latency(port, path, count)
    spent = {
        name: (cpu_seconds(pids) - before[name]) / count * 1e6 for name, pids in groups.items()
    }
    return samples, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pin", action="store_true", help="load generator on its own core")
    args = parser.parse_args()

    platform_cpus, generator_cpus = split_cpus(args.pin)
    print(f"machine: {machine()}; commit {commit()}; pinned: {args.pin}")
    per_round = max(1, args.requests // args.rounds)
    with (
        baseline(platform_cpus) as (baseline_port, server),
        lamina(cpus=platform_cpus) as platform,
    ):
        pin_self(generator_cpus)
        create_noop(platform.port)
        create_weighted_alias(platform.port)
        paths = {
            "bare aiohttp reply (baseline)": (baseline_port, "/"),
            "Lamina warm invoke": (platform.port, INVOKE_PATH),
            "Lamina warm invoke, alias 90/10": (platform.port, ALIAS_PATH),
        }
        for port, path in paths.values():
            latency(port, path, 300)  # warm connections, caches and the sandboxes
        roles = platform.roles()  # now that the sandboxes exist
        targets = {
            label: (port, path, roles if port == platform.port else {"server": [server.pid]})
            for label, (port, path) in paths.items()
        }
        runs: dict[str, list[list[float]]] = {label: [] for label in targets}
        cpu: dict[str, list[dict[str, float]]] = {label: [] for label in targets}
        own: dict[str, list[float]] = {label: [] for label in targets}
        for _ in range(args.rounds):  # interleaved, so background load hits all alike
            for label, (port, path, groups) in targets.items():
                own_before = own_cpu_seconds()
                samples, cpu_us = measure(port, path, per_round, groups)
                own[label].append((own_cpu_seconds() - own_before) / per_round * 1e6)
                runs[label].append(samples)
                cpu[label].append(cpu_us)

    figures = {label: Figure.of_runs(r) for label, r in runs.items()}
    base = figures["bare aiohttp reply (baseline)"]
    rows = []
    for label, figure in figures.items():
        rows.append([
            label, f"{figure.median:.3f}", f"{figure.p99:.3f}",
            f"{figure.median - base.median:.3f}" if figure is not base else "",
            f"{figure.median / base.median:.1f}x",
            f"{statistics.median(sum(r.values()) for r in cpu[label]):.0f}",
            f"{statistics.median(own[label]):.0f}",
        ])  # fmt: skip
    print(f"{args.rounds} interleaved rounds of {per_round} sequential requests each; medians "
          "over rounds; the no-op handler's own time (under 1 µs) is not subtracted")  # fmt: skip
    header = ["target", "p50 ms", "p99 ms", "added p50 ms", "vs baseline",
              "CPU µs/request (target)", "CPU µs/request (load generator)"]  # fmt: skip
    print(table(header, rows))
    lamina_cpu = cpu["Lamina warm invoke"]
    print("\nCPU µs per warm invoke, by process (medians over rounds):")
    print(table(list(roles), [[f"{statistics.median(r[n] for r in lamina_cpu):.0f}"
                               for n in roles]]))  # fmt: skip


if __name__ == "__main__":
    main()
