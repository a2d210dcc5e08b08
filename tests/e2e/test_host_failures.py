"""Losing a host or a zone, with real hosts: one worker per network namespace, real cuts."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, key, start_server, stop_server
from tests.e2e.hosts import FRONTEND_ADDRESS, Network, members, require_root_and_iproute, wait_for

ZONES = ["a", "b", "c"]
LEASE_S = 3.0
WORKER_MEMORY_MB = 1024
SLEEPER = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


@dataclass
class Cluster:
    server: Server
    network: Network


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_root_and_iproute()
    network = Network.create(ZONES)
    server = None
    try:
        # The frontend listens on the test's own bridge, reachable only from its namespaces,
        # so the development key stays acceptable there.
        server = start_server(
            tmp_path / "data",
            "--workers", "0",
            "--lease", str(LEASE_S),
            "--default-key",
            host=FRONTEND_ADDRESS,
        )  # fmt: skip
        token = server.platform_token()
        for zone in ZONES:
            state = tmp_path / f"worker-{zone}"
            network.start_worker(zone, server.url, state, WORKER_MEMORY_MB, token)
        wait_for(lambda: len(members(server.url)) == len(ZONES), 60, "three workers to join")
        yield Cluster(server, network)
    finally:
        network.close()
        if server is not None:
            stop_server(server)


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    error: str | None
    cold: bool


def invoke(client: object, name: str, sleep: float = 0.0) -> Outcome:
    started = time.monotonic()
    try:
        reply = client.invoke(  # type: ignore[attr-defined]
            FunctionName=name, Payload=json.dumps({"sleep": sleep}), LogType="Tail"
        )
    except ClientError as exc:
        return Outcome(started, time.monotonic(), exc.response["Error"]["Code"], False)
    tail = base64.b64decode(reply["LogResult"]).decode()
    error = reply.get("FunctionError")
    return Outcome(started, time.monotonic(), error, "Init Duration" in tail)


def sandboxes_per_worker(url: str) -> dict[str, int]:
    return {w: m["sandboxes"] for w, m in members(url).items()}


def lambda_client(server: Server) -> object:
    """A Lambda client that never retries, so every failure Lamina answers is seen."""
    return server.client(retries={"mode": "standard", "total_max_attempts": 1})


def busy_on_worker(worker_url: str) -> int:
    """Sandboxes running an event, as the worker itself reports them."""
    health = requests.get(f"{worker_url}/v1/health", timeout=10).json()
    return int(health["sandboxes"].get("busy", 0))


def idle_on_worker(worker_url: str) -> int:
    health = requests.get(f"{worker_url}/v1/health", timeout=10).json()
    return int(health["sandboxes"].get("idle", 0))


def test_killing_one_of_three_workers_fails_only_the_invokes_in_flight_on_it(
    cluster: Cluster,
) -> None:
    server = cluster.server
    name = create_function(lambda_client(server), SLEEPER, Timeout=30)
    outcomes: list[Outcome] = []
    stop = threading.Event()

    def load() -> None:
        client = lambda_client(server)
        while not stop.is_set():
            outcomes.append(invoke(client, name, sleep=0.3))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: all(n >= 1 for n in sandboxes_per_worker(server.url).values()),
            60,
            "sandboxes on every worker",
        )
        before = members(server.url)["host-b"]
        killed_at = time.monotonic()
        cluster.network.hosts["b"].kill()
        gone_at = wait_for(
            lambda: "host-b" not in members(server.url), LEASE_S + 5, "host-b to leave"
        )
        time.sleep(LEASE_S + 2)  # keep the load on to watch the error rate
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

    failures = [o for o in outcomes if o.error is not None]
    assert all(f.error == "ServiceException" for f in failures), failures
    # Only invokes already running when the worker died fail, at most one per its sandboxes.
    assert all(f.started < killed_at < f.ended for f in failures), (failures, killed_at)
    assert len(failures) <= before["sandboxes"]
    recovered = killed_at + LEASE_S + 1
    assert [o for o in outcomes if o.started >= recovered and o.error is not None] == []
    assert any(o.started >= recovered for o in outcomes)
    assert gone_at - killed_at <= LEASE_S + 1

    # Nothing is left pointing at the lost worker: no member, no sandbox, no counting lease.
    state = server.state()
    assert sum(state["counting"]["in_flight"].values()) == 0
    listed = members(server.url)
    assert set(listed) == {"host-a", "host-c"}
    total = state["sandboxes"]["idle"] + state["sandboxes"]["busy"]
    total += state["sandboxes"]["initialising"]
    assert total == sum(m["sandboxes"] for m in listed.values())


def test_a_cut_zone_costs_only_its_capacity_and_the_other_zones_answer_warm(
    cluster: Cluster,
) -> None:
    server = cluster.server
    warm = create_function(lambda_client(server), SLEEPER, Timeout=60)
    slow = create_function(lambda_client(server), SLEEPER, Timeout=60)
    pool = ThreadPoolExecutor(max_workers=6)
    clients = [lambda_client(server) for _ in range(6)]

    # Three concurrent invokes give `warm` one sandbox in each zone.
    first = list(pool.map(lambda c: invoke(c, warm, sleep=1.0), clients[:3]))
    assert [o.error for o in first] == [None, None, None]
    assert sandboxes_per_worker(server.url) == {"host-a": 1, "host-b": 1, "host-c": 1}

    # One long invoke of `slow` runs in each zone while zone b is cut off.
    running = [pool.submit(invoke, c, slow, 20.0) for c in clients[3:]]
    urls_by_id = {w: m["url"] for w, m in members(server.url).items()}
    urls = list(urls_by_id.values())
    wait_for(lambda: all(busy_on_worker(url) == 1 for url in urls), 30, "slow invokes running")
    cut_at = time.monotonic()
    cluster.network.hosts["b"].cut()

    # Invokes keep answering while the lease of host-b runs out, and after it has.
    during = [invoke(clients[0], warm) for _ in range(3)]
    wait_for(lambda: "host-b" not in members(server.url), LEASE_S + 5, "host-b to leave")
    after = [invoke(clients[0], warm) for _ in range(5)]
    after += list(pool.map(lambda c: invoke(c, warm, sleep=0.2), clients[:2]))

    assert [o.error for o in during + after] == [None] * (len(during) + len(after))
    assert [o.cold for o in after] == [False] * len(after)
    assert sum(r.done() for r in running) == 1
    assert server.state()["counting"]["in_flight"] == {key(slow): 2}

    # The invoke that was running in zone b ends with Lambda's service error, without
    # waiting for its 20 s; its counting lease goes with it, the other two still run.
    outcomes = [r.result(timeout=60) for r in running]
    failed = [o for o in outcomes if o.error is not None]
    succeeded = [o for o in outcomes if o.error is None]
    assert [o.error for o in failed] == ["ServiceException"]
    assert len(succeeded) == 2
    assert failed[0].ended < min(o.ended for o in succeeded)
    assert failed[0].ended > cut_at
    assert sum(server.state()["counting"]["in_flight"].values()) == 0
    pool.shutdown()

    # Back on the network, host-b joins anew and drops the idle sandbox nobody knows of.
    cluster.network.hosts["b"].restore()
    wait_for(lambda: "host-b" in members(server.url), 30, "host-b to join again")
    wait_for(lambda: idle_on_worker(urls_by_id["host-b"]) == 0, 30, "host-b's orphan to go")
