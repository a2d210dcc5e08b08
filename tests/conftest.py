"""Shared fixtures: a real Lamina started as a user starts it, and clients pointed at it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from lamina.auth.platform import TOKEN_FILE
from lamina.auth.signing import signed_headers
from lamina.sandbox.instance import Invocation
from lamina.sandbox.runtime_api import RuntimeApiServer
from lamina.tenancy import DEFAULT_ACCOUNT, FunctionKey

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
ROLE = "arn:aws:iam::000000000000:role/lamina-test"
PYTHON_RUNTIME = f"python3.{sys.version_info.minor}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(
        self, service: str = "lambda", retries: dict | None = None, **config: object
    ) -> object:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries=retries or {"max_attempts": 1}, read_timeout=120, **config),
        )

    def logs(self) -> object:
        """A boto3 CloudWatch Logs client, on the same endpoint as Lambda's API."""
        return self.client("logs")

    def function_log_events(self, name: str) -> list[str]:
        """The messages in the function's log group so far (none if it has no group yet)."""
        pages = self.logs().get_paginator("filter_log_events")  # type: ignore[attr-defined]
        try:
            events = pages.paginate(logGroupName=f"/aws/lambda/{name}").build_full_result()
        except self.logs().exceptions.ResourceNotFoundException:  # type: ignore[attr-defined]
            return []
        return [event["message"] for event in events["events"]]

    def function_log(self, name: str) -> str:
        """Every message in the function's log group so far, one per line."""
        return "".join(message + "\n" for message in self.function_log_events(name))

    def signed(
        self, method: str, path: str, data: bytes | str = b"", **headers: str
    ) -> requests.Response:
        """A raw request to the API, signed with the test key as an AWS client signs it."""
        body = data.encode() if isinstance(data, str) else data
        url = self.url + path
        signed = signed_headers(method, url, body, ("test", "test"), "us-east-1", headers)
        return requests.request(method, url, data=body, headers=signed, timeout=60)

    def platform_token(self) -> str:
        """The token Lamina's own parts prove themselves with, as a worker on another host
        is given it."""
        return (self.data_dir / TOKEN_FILE).read_text().strip()

    def state(self) -> dict:
        """Lamina's own report, asked with the development key (an admin key)."""
        return self.signed("GET", "/_lamina/v1/state").json()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


# Every platform a test started, so that one a failing test left running dies with the session.
_STARTED: list[subprocess.Popen[bytes]] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for process in _STARTED:
        if process.poll() is None:
            # Its own process group: the workers and their sandboxes go with it.
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def start_server(data_dir: Path, *extra: str, host: str = "127.0.0.1") -> Server:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
    port = free_port()
    log_path = data_dir.parent / f"lamina-{port}.log"
    with open(log_path, "wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "lamina", "up", "--host", host, "--port", str(port),
             "--data-dir", str(data_dir), "--log-level", "debug", *extra],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    _STARTED.append(process)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lamina exited early:\n{log_path.read_text()}")
        try:
            if requests.get(f"{url}/_lamina/health", timeout=1).status_code == 200:
                return Server(url, data_dir, process, log_path)
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"lamina did not become healthy:\n{log_path.read_text()}")


# Both isolation backends, for tests that run under each; gVisor where this host has it.
BACKENDS = [
    "namespace",
    pytest.param(
        "gvisor",
        marks=pytest.mark.skipif(
            shutil.which("runsc") is None or os.geteuid() != 0,
            reason="gVisor needs runsc (apt-get install runsc) and root",
        ),
    ),
]


def one_worker_platform(factory: pytest.TempPathFactory, name: str) -> Iterator[Server]:
    """A `lamina up` with one worker for a module's tests, stopped after them."""
    running = start_server(factory.mktemp(name) / "data", "--workers", "1")
    yield running
    stop_server(running)


def stop_server(server: Server) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        raise


def sandbox_processes(data_dir: Path) -> list[str]:
    """Command lines of live processes that belong to this server's sandboxes or workers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(data_dir) in cmdline and "pytest" not in cmdline:
            found.append(cmdline)
    return found


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("lamina") / "data"
    running = start_server(data_dir, "--workers", "2", "--keep-alive", "600")
    yield running
    stop_server(running)


class FakeSandbox:
    """What the Runtime API server asks of a sandbox for `next`: one invocation, named after
    the sandbox."""

    def __init__(self, socket_path: str, name: str) -> None:
        self.socket_path = socket_path
        self.name = name

    async def next_invocation(self) -> Invocation:
        return Invocation(f"id-{self.name}", json.dumps(self.name).encode(), f"arn:{self.name}")


@pytest.fixture
async def runtime_api() -> AsyncIterator[RuntimeApiServer]:
    """A worker's Runtime API server, started, with no sandbox yet."""
    started = RuntimeApiServer()
    await started.start()
    yield started
    await started.close()


@pytest.fixture
def lam(server: Server) -> object:
    return server.client()


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


_counter = iter(range(1, 1_000_000))


def key(name: str) -> str:
    """How Lamina's state report names the development account's function `name`."""
    return FunctionKey.of(DEFAULT_ACCOUNT, name)


def unique_name(prefix: str = "fn") -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


def create_function(
    client: object,
    code: str | dict[str, str | bytes],
    handler: str = "index.handler",
    wait: bool = True,
    **extra: object,
) -> str:
    """Create a Python function from source (put in index.py) and wait until it is Active."""
    files = {"index.py": code} if isinstance(code, str) else code
    name = str(extra.pop("FunctionName", unique_name()))
    client.create_function(  # type: ignore[attr-defined]
        FunctionName=name,
        Runtime=str(extra.pop("Runtime", PYTHON_RUNTIME)),
        Role=ROLE,
        Handler=handler,
        Code={"ZipFile": make_zip(files)},
        **extra,
    )
    if wait:
        client.get_waiter("function_active_v2").wait(  # type: ignore[attr-defined]
            FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
        )
    return name
