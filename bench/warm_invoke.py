"""Warm invoke latency and throughput of Lamina, next to a bare HTTP reply on the same machine.

    .venv/bin/python bench/warm_invoke.py [--requests 5000] [--seconds 5]

Starts `lamina up` on a free loopback port with a fresh data directory, creates a no-op
Python function and warms it, then measures, in the same run and with the same client code:

- latency: one client, sequential requests on one keep-alive connection (p50, p99, mean);
- throughput: closed loops of C concurrent clients for a fixed time (invokes per second);

against Lamina's Invoke API and against a bare aiohttp server that answers `null` on loopback
(the floor for one HTTP exchange with this client on this machine), and through an alias that
sends 10% of the invokes to a second version (the cost of resolving and routing). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import io
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
import zipfile
from typing import Any

import aiohttp
import boto3

from lamina.auth.signing import signed_headers

INVOKE_PATH = "/2015-03-31/functions/noop/invocations"
ALIAS_PATH = f"{INVOKE_PATH}?Qualifier=live"
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


def signed(port: int, method: str, path: str, body: bytes) -> dict[str, str]:
    """Headers signing the request with the development key, as every API request must be."""
    url = f"http://127.0.0.1:{port}{path}"
    return signed_headers(method, url, body, ("test", "test"), "us-east-1")


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


def create_function_zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


def create_function(port: int, name: str, runtime: str, code: bytes) -> None:
    """Create a function through the Lambda API and wait until it is Active."""
    body = json.dumps(
        {
            "FunctionName": name,
            "Runtime": runtime,
            "Role": "arn:aws:iam::000000000000:role/bench",
            "Handler": "index.handler",
            "Code": {"ZipFile": base64.b64encode(code).decode()},
        }
    ).encode()
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


async def throughput(port: int, path: str, clients: int, seconds: float) -> float:
    """Closed loop: each client sends its next request when the last one answered."""
    url = f"http://127.0.0.1:{port}{path}"
    done = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                headers = signed(port, "POST", path, b"{}")
                async with session.post(url, data=b"{}", headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status {response.status}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return done / elapsed


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(port: int, path: str, args: argparse.Namespace) -> dict[str, float]:
    latency(port, path, 200)  # warm connections, caches and the sandbox
    samples = latency(port, path, args.requests)
    result = {
        "p50": statistics.median(samples),
        "p99": percentile(samples, 0.99),
        "mean": statistics.fmean(samples),
    }
    for clients in args.clients:
        result[f"rps@{clients}"] = asyncio.run(throughput(port, path, clients, args.seconds))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="lamina-bench-")
    lamina_port, baseline_port = free_port(), free_port()
    lamina = start_lamina(lamina_port, data_dir)
    baseline = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(baseline_port)])
    try:
        wait_until_up(lamina_port, "/_lamina/health")
        wait_until_up(baseline_port, "/", method="POST")
        create_noop(lamina_port)
        create_weighted_alias(lamina_port)
        rows = {
            "bare aiohttp reply (baseline)": measure(baseline_port, "/", args),
            "Lamina warm invoke": measure(lamina_port, INVOKE_PATH, args),
            "Lamina warm invoke, alias 90/10 over two versions": measure(
                lamina_port, ALIAS_PATH, args
            ),
        }
    finally:
        lamina.send_signal(signal.SIGTERM)
        baseline.send_signal(signal.SIGTERM)
        lamina.wait(30)
        baseline.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.requests} sequential requests, "
          f"{args.seconds:.0f} s per throughput point")  # fmt: skip
    columns = ["p50 ms", "p99 ms", "mean ms"] + [f"rps, {c} clients" for c in args.clients]
    print("| | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label, result in rows.items():
        values = [result["p50"], result["p99"], result["mean"]]
        cells = [f"{v:.3f}" for v in values] + [f"{result[f'rps@{c}']:.0f}" for c in args.clients]
        print(f"| {label} | " + " | ".join(cells) + " |")
    base, ours = rows["bare aiohttp reply (baseline)"], rows["Lamina warm invoke"]
    print(f"\nplatform-added p50: {ours['p50'] - base['p50']:.3f} ms "
          f"({ours['p50'] / base['p50']:.1f}x the baseline)")  # fmt: skip


if __name__ == "__main__":
    main()
