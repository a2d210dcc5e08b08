"""A sandbox that goes is shut down as Lambda does it: SIGTERM to the runtime first, then
SIGKILL for whatever still runs once the grace has passed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.conftest import Server, create_function

# Says so in its log when told to shut down, then exits.
GRACEFUL = """
import signal, sys
def on_term(signum, frame):
    print("shutting down on", signal.Signals(signum).name, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
def handler(event, context):
    return "ready"
"""

# Ignores SIGTERM, with a marker in its command line so that the host can find it.
STUBBORN = """
import signal, subprocess, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def handler(event, context):
    subprocess.Popen([sys.executable, "-c",
                      "import signal, time\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\n"
                      "while True: time.sleep(1)", event["marker"]])
    return "ready"
"""


def test_a_retired_sandbox_hears_sigterm_before_it_goes(lam: object, server: Server) -> None:
    name = create_function(lam, GRACEFUL)
    lam.invoke(FunctionName=name)  # type: ignore[attr-defined]

    lam.delete_function(FunctionName=name)  # type: ignore[attr-defined]

    logs = server.client("logs")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = logs.filter_log_events(  # type: ignore[attr-defined]
            logGroupName=f"/aws/lambda/{name}", filterPattern='"shutting down"'
        )["events"]
        if events:
            break
        time.sleep(0.1)
    assert [e["message"].strip() for e in events] == ["shutting down on SIGTERM"]


def test_what_ignores_sigterm_is_killed_once_the_grace_has_passed(
    lam: object, server: Server
) -> None:
    marker = f"stubborn-{os.getpid()}-{time.monotonic_ns()}"
    name = create_function(lam, STUBBORN)
    lam.invoke(FunctionName=name, Payload=f'{{"marker": "{marker}"}}')  # type: ignore[attr-defined]
    assert _running(marker)

    lam.delete_function(FunctionName=name)  # type: ignore[attr-defined]

    deadline = time.monotonic() + 30
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(marker)


def _running(marker: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    return True
            except OSError:
                continue
    return False
