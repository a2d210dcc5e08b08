"""Hosts for multi-host tests: network namespaces on a bridge, one Lamina worker in each.

The frontend listens on the bridge's address in the root namespace; each worker listens on
its namespace's end of a veth pair. Traffic only ever flows between addresses created here.
Cutting a host brings its link down; everything is removed in `close`, also after a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from lamina.auth.platform import TOKEN_ENV
from lamina.auth.signing import signed_headers

# Per test process, so parallel runs on one machine do not share addresses.
SUBNET = f"10.213.{os.getpid() % 250}"
FRONTEND_ADDRESS = f"{SUBNET}.1"


def run_ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def require_root_and_iproute() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed: apt-get install iproute2")


@dataclass
class Host:
    name: str
    zone: str
    address: str
    namespace: str
    link: str
    process: subprocess.Popen[bytes] | None = None

    def cut(self) -> None:
        run_ip("link", "set", self.link, "down")

    def restore(self) -> None:
        run_ip("link", "set", self.link, "up")

    def kill(self) -> None:
        """SIGKILL the worker and everything in its process group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


_NETWORKS = itertools.count()


@dataclass
class Network:
    prefix: str
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)

    @classmethod
    def create(cls, zones: list[str]) -> Network:
        # Unique per network: a namespace's links vanish asynchronously after `netns del`.
        prefix = f"lm{os.getpid() % 100000}{next(_NETWORKS) % 10}"
        network = cls(prefix, f"{prefix}br")
        try:
            run_ip("link", "add", network.bridge, "type", "bridge")
            run_ip("addr", "add", f"{FRONTEND_ADDRESS}/24", "dev", network.bridge)
            run_ip("link", "set", network.bridge, "up")
            for index, zone in enumerate(zones, start=1):
                network._add_host(index, zone)
        except BaseException:
            network.close()
            raise
        return network

    def _add_host(self, index: int, zone: str) -> None:
        host = Host(
            name=f"host-{zone}",
            zone=zone,
            address=f"{SUBNET}.{10 + index}",
            namespace=f"{self.prefix}-{zone}",
            link=f"{self.prefix}h{index}",
        )
        self.hosts[zone] = host
        inner = f"{self.prefix}n{index}"
        run_ip("netns", "add", host.namespace)
        run_ip("link", "add", host.link, "type", "veth", "peer", "name", inner)
        run_ip("link", "set", inner, "netns", host.namespace)
        run_ip("link", "set", host.link, "master", self.bridge)
        run_ip("link", "set", host.link, "up")
        run_ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inner)
        run_ip("-n", host.namespace, "link", "set", inner, "up")
        run_ip("-n", host.namespace, "link", "set", "lo", "up")

    def start_worker(
        self, zone: str, join_url: str, state_dir: Path, memory_mb: int, token: str
    ) -> None:
        """Start `lamina worker --join` inside the zone's namespace, as on another host."""
        host = self.hosts[zone]
        log_path = state_dir.parent / f"{host.name}.log"
        with open(log_path, "wb") as handle:
            # nsenter, unlike `ip netns exec`, leaves /sys (and so the cgroups) as it is.
            host.process = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{host.namespace}",
                 sys.executable, "-m", "lamina", "worker", "--id", host.name,
                 "--zone", zone, "--host", host.address, "--memory-mb", str(memory_mb),
                 "--state-dir", str(state_dir), "--join", join_url, "--log-level", "debug"],
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, TOKEN_ENV: token},
            )  # fmt: skip

    def close(self) -> None:
        for host in self.hosts.values():
            if host.process is not None and host.process.poll() is None:
                os.killpg(host.process.pid, signal.SIGKILL)
                host.process.wait(timeout=10)
            # Deleting the root end removes the veth pair at once, freeing its names.
            subprocess.run(["ip", "link", "del", host.link], capture_output=True)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def members(url: str) -> dict[str, dict]:
    # The development key is an admin key; these tests keep it on their private bridge.
    report_url = f"{url}/_lamina/v1/workers"
    headers = signed_headers("GET", report_url, b"", ("test", "test"), "us-east-1")
    report = requests.get(report_url, headers=headers, timeout=10).json()
    return {w["worker_id"]: w for w in report["workers"]}


def wait_for(condition: object, timeout: float, what: str) -> float:
    """Poll a real server until `condition()` holds; returns when it did (monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
