"""Watching asynchronous events run on a real Lamina, through the functions' log store."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamina.tenancy import DEFAULT_ACCOUNT, qualify

RECORD = """
import json

def handler(event, context):
    print("RECORD " + json.dumps(event))
"""
FAILING = """
def handler(event, context):
    print("RAN", context.aws_request_id)
    raise Exception("intentional failure")
"""
MARKER = """
import time

def handler(event, context):
    print("RAN", context.aws_request_id, event.get("id", ""))
    time.sleep(event.get("hold", 0))
    return {"id": event.get("id")}
"""


def function_log(data_dir: Path, name: str) -> str:
    """Everything function `name` wrote, over every log stream, read from the log store."""
    path = data_dir / "logs.db"
    if not path.exists():
        return ""
    # Read-only, beside the running platform: the store is SQLite in WAL mode.
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT message FROM events WHERE group_name = ? ORDER BY id",
            (qualify(DEFAULT_ACCOUNT, f"/aws/lambda/{name}"),),
        )
        return "".join(message + "\n" for (message,) in rows)


def runs(data_dir: Path, name: str) -> list[list[str]]:
    """The words after RAN on each line a MARKER or FAILING function printed."""
    return [
        line.split()[1:] for line in re.findall(r"^RAN .*$", function_log(data_dir, name), re.M)
    ]


def records(data_dir: Path, name: str) -> list[dict[str, Any]]:
    """The invocation records a RECORD function received."""
    text = function_log(data_dir, name)
    return [json.loads(line) for line in re.findall(r"^RECORD (.*)$", text, re.M)]


def wait_until(check: Callable[[], Any], seconds: float = 60.0, what: str = "") -> Any:
    """Poll a running Lamina for an observable effect, bounded in time."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {seconds}s: {what or check}")
        time.sleep(0.1)


def arn(name: str) -> str:
    return f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
