"""SIGTERM stops Lamina gracefully: invokes already running are answered, not failed.

The frontend stops listening at once, so its workers can no longer renew their membership
leases; an invoke that outlives a lease must still get its function's answer.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

from tests.conftest import create_function, start_server, stop_server


def test_an_invoke_running_when_sigterm_arrives_past_a_lease_is_answered(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "data", "--workers", "1", "--lease", "1")
    lam: Any = server.client(retries={"total_max_attempts": 1})
    name = create_function(
        lam,
        "import time\ndef handler(event, context):\n    time.sleep(4)\n    return 'done'\n",
        Timeout=30,
    )
    lam.invoke(FunctionName=name, Payload=b'{"warm": true}')
    answers: list[object] = []

    def call() -> None:
        try:
            answers.append(lam.invoke(FunctionName=name)["Payload"].read())
        except Exception as error:  # the failure is what the test reports
            answers.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(1)
    server.process.send_signal(signal.SIGTERM)
    caller.join(timeout=60)

    assert answers == [b'"done"']
    assert stop_server(server) == 0
