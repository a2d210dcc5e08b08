"""No accepted event is lost when the whole platform is killed with SIGKILL and restarted."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import create_function, key, start_server, stop_server
from tests.e2e.asyncwatch import MARKER, runs, wait_until

EVENTS = 1000
EVENT_CONCURRENCY = 8
# Slow enough that most events are still queued when the platform is killed.
STEADY = """
import time

def handler(event, context):
    print("RAN", context.aws_request_id, event["n"])
    time.sleep(0.05)
"""


def test_a_thousand_accepted_events_all_run_after_the_platform_is_killed_with_sigkill(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir, "--event-concurrency", str(EVENT_CONCURRENCY))
    name = create_function(first.client(), STEADY, Timeout=5)

    def accept(n: int) -> int:
        reply = first.signed(
            "POST",
            f"/2015-03-31/functions/{name}/invocations",
            json.dumps({"n": n}),
            **{"X-Amz-Invocation-Type": "Event"},
        )
        return reply.status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(accept, range(EVENTS)))
    wait_until(lambda: len(runs(data_dir, name)) >= 20, what="the first runs")
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait(timeout=30)
    before = Counter(words[1] for words in runs(data_dir, name))

    second = start_server(data_dir, "--event-concurrency", str(EVENT_CONCURRENCY))
    try:
        every = {str(n) for n in range(EVENTS)}
        wait_until(
            lambda: {words[1] for words in runs(data_dir, name)} >= every,
            seconds=240,
            what="every accepted event run",
        )
        wait_until(lambda: key(name) not in second.state()["events"], what="an empty queue")
    finally:
        stop_server(second)

    assert statuses == [202] * EVENTS
    assert 0 < len(before) < EVENTS, "the kill came after every event had run"
    after = Counter(words[1] for words in runs(data_dir, name))
    twice = {n for n, count in after.items() if count > 1}
    # Only events running at the kill may run again, and at most the pollers' slots were.
    assert len(twice) <= EVENT_CONCURRENCY
    assert twice <= set(before)
    assert all(count <= 2 for count in after.values())


def test_a_stop_lets_a_running_event_finish_so_a_restart_does_not_run_it_again(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    lam = first.client()
    name = create_function(lam, MARKER, Timeout=10)
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"id": "g", "hold": 2}')
    wait_until(lambda: runs(data_dir, name), what="the event started")

    stop_server(first)
    second = start_server(data_dir)
    try:
        left = second.state()["events"]
    finally:
        stop_server(second)

    assert key(name) not in left
    assert runs(data_dir, name) == [[runs(data_dir, name)[0][0], "g"]]
