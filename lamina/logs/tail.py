"""`lamina logs`: a function's log events, read through the CloudWatch Logs API like any client.

Without --follow it prints every event of the function's log group and stops; with it, it
keeps asking for events newer than the last one printed, once a second.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from lamina.auth.signing import caller_credentials, signed_headers

POLL_INTERVAL_S = 1.0


class LogsUnavailable(Exception):
    """The endpoint did not answer, or answered with an error."""


def filter_log_events(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    url = endpoint.rstrip("/") + "/"
    data = json.dumps(body).encode()
    credentials, region = caller_credentials()
    headers = signed_headers(
        "POST",
        url,
        data,
        credentials,
        region,
        {
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "Logs_20140328.FilterLogEvents",
        },
        service="logs",
    )
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read() or b"{}")
        raise LogsUnavailable(error.get("message") or str(exc)) from None
    except OSError as exc:
        raise LogsUnavailable(f"cannot reach {endpoint}: {exc}") from None


def events_since(endpoint: str, group: str, start: int | None) -> Iterator[dict[str, Any]]:
    """Every event of the group from `start` (ms) on, following the paging tokens."""
    body: dict[str, Any] = {"logGroupName": group}
    if start is not None:
        body["startTime"] = start
    while True:
        answer = filter_log_events(endpoint, body)
        yield from answer["events"]
        if "nextToken" not in answer:
            return
        body["nextToken"] = answer["nextToken"]


def format_event(event: dict[str, Any]) -> str:
    stamp = datetime.fromtimestamp(event["timestamp"] / 1000, tz=UTC)
    when = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{when} {event['logStreamName']} {event['message']}"


def tail(
    endpoint: str,
    function_name: str,
    follow: bool,
    echo: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    group = f"/aws/lambda/{function_name}"
    start: int | None = None
    seen: set[str] = set()
    while True:
        for event in events_since(endpoint, group, start):
            if event["eventId"] in seen:
                continue
            echo(format_event(event))
            # Events of the last instant may still arrive: ask again from it, skipping repeats.
            if start is None or event["timestamp"] > start:
                start, seen = event["timestamp"], set()
            seen.add(event["eventId"])
        if not follow:
            return
        sleep(POLL_INTERVAL_S)
