"""Lambda's invocation record: what a destination receives about an event's outcome."""

from __future__ import annotations

import json
import time
from typing import Any

from lamina.eventqueue.model import Attempt, AttemptKind, Condition, QueuedEvent


def invocation_record(
    event: QueuedEvent, condition: Condition, invokes: int, attempt: Attempt | None, now: float
) -> bytes:
    """The record as Lambda sends it; the response parts only when the function ran."""
    doc: dict[str, Any] = {
        "version": "1.0",
        "timestamp": _timestamp(now),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": event.function_arn,
            "condition": condition.value,
            "approximateInvokeCount": invokes,
        },
        "requestPayload": _json_or_text(event.payload),
    }
    if attempt is not None and attempt.kind is AttemptKind.RAN:
        response: dict[str, Any] = {
            "statusCode": attempt.status_code,
            "executedVersion": attempt.executed_version,
        }
        if attempt.function_error is not None:
            response["functionError"] = attempt.function_error
        doc["responseContext"] = response
        doc["responsePayload"] = _json_or_text(attempt.payload)
    return json.dumps(doc).encode()


def _timestamp(now: float) -> str:
    """2019-11-24T21:52:47.693Z, as Lambda writes the record's time."""
    millis = int((now % 1) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{millis:03d}Z"


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")
