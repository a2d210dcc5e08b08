"""The platform's lines in a function's log, written the way Lambda writes them."""

from __future__ import annotations

import base64
import math
import time

TAIL_BYTES = 4096


def init_start(runtime: str, runtime_version_arn: str) -> str:
    """The first line of every sandbox's log stream: `python:3.12.lamina`, `provided:al2023...`."""
    family = runtime.replace("python", "python:", 1).replace("provided.", "provided:", 1)
    return (
        f"INIT_START Runtime Version: {family}.lamina"
        f"\tRuntime Version ARN: {runtime_version_arn}\n"
    )


def start(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}\n"


def end(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report(
    request_id: str,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None,
    status: str | None = None,
) -> str:
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms",
        f"Memory Size: {memory_size_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        fields.append(f"Init Duration: {init_duration_ms:.2f} ms")
    if status is not None:
        fields.append(f"Status: {status}")
    return "\t".join(fields) + "\t\n"


def timed_out(request_id: str, timeout_s: int, now: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    millis = int((now % 1) * 1000)
    return f"{stamp}.{millis:03d}Z {request_id} Task timed out after {timeout_s:.2f} seconds\n"


def tail(log_bytes: bytes) -> str:
    """What Lambda returns in X-Amz-Log-Result: base64 of the last 4 KB of the log."""
    return base64.b64encode(log_bytes[-TAIL_BYTES:]).decode()
