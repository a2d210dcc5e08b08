"""The part of the CloudWatch Logs API that reads function logs, on Lambda's own endpoint.

boto3's `logs` client and `aws logs` call it with the JSON 1.1 protocol: `POST /` with
`X-Amz-Target: Logs_20140328.<Operation>`. Served: DescribeLogGroups, DescribeLogStreams,
GetLogEvents, FilterLogEvents, PutRetentionPolicy and DeleteRetentionPolicy.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from lamina.frontend.context import FrontendContext
from lamina.frontend.errors import (
    LogsInvalidParameter,
    LogsResourceNotFound,
    LogsUnknownOperation,
)
from lamina.frontend.handling import tenant
from lamina.logs import pattern
from lamina.logs.store import RETENTION_DAYS, Event, GroupMissing, StreamMissing

log = logging.getLogger(__name__)

TARGET_PREFIX = "Logs_20140328."
CONTENT_TYPE = "application/x-amz-json-1.1"
# GetLogEvents and FilterLogEvents answer at most 1 MB of events.
MAX_ANSWER_BYTES = 1_048_576
# FilterLogEvents reads at most this many events per call, then hands back a token.
SCAN_BUDGET = 100_000

Operation = Callable[[FrontendContext, dict[str, Any]], dict[str, Any]]


def routes(ctx: FrontendContext) -> list[web.RouteDef]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _dispatch(tenant(ctx, request), request)

    return [web.post("/", handle)]


async def _dispatch(ctx: FrontendContext, request: web.Request) -> web.StreamResponse:
    target = request.headers.get("X-Amz-Target", "")
    operation = _OPERATIONS.get(target.removeprefix(TARGET_PREFIX))
    if not target.startswith(TARGET_PREFIX) or operation is None:
        raise LogsUnknownOperation(f"Lamina does not serve the operation {target or '(none)'}")
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise LogsInvalidParameter("The request body is not JSON") from exc
    if not isinstance(body, dict):
        raise LogsInvalidParameter("The request body is not a JSON object")

    try:
        answer = operation(ctx, body)
    except GroupMissing as exc:
        raise LogsResourceNotFound("The specified log group does not exist.") from exc
    except StreamMissing as exc:
        raise LogsResourceNotFound("The specified log stream does not exist.") from exc
    except pattern.PatternError as exc:
        raise LogsInvalidParameter(str(exc)) from exc
    return web.Response(body=json.dumps(answer).encode(), content_type=CONTENT_TYPE)


# Operations


def describe_log_groups(ctx: FrontendContext, body: dict[str, Any]) -> dict[str, Any]:
    limit = _limit(body, 50)
    prefix = _string(body, "logGroupNamePrefix") or ""
    needle = (_string(body, "logGroupNamePattern") or "").lower()
    if prefix and needle:
        raise LogsInvalidParameter(
            "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters."
        )
    groups = [g for g in ctx.logs.groups(prefix) if needle in g.name.lower()]
    page, token = _page(groups, body, limit)

    region, account = ctx.scope.region, ctx.scope.account_id
    found = []
    for group in page:
        arn = f"arn:aws:logs:{region}:{account}:log-group:{group.name}"
        doc: dict[str, Any] = {
            "logGroupName": group.name,
            "creationTime": group.created,
            "metricFilterCount": 0,
            "arn": f"{arn}:*",
            "storedBytes": group.stored_bytes,
            "logGroupClass": "STANDARD",
            "logGroupArn": arn,
        }
        if group.retention_days is not None:
            doc["retentionInDays"] = group.retention_days
        found.append(doc)
    return _with_token({"logGroups": found}, token)


def describe_log_streams(ctx: FrontendContext, body: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(body)
    limit = _limit(body, 50)
    prefix = _string(body, "logStreamNamePrefix") or ""
    order_by = _string(body, "orderBy") or "LogStreamName"
    if order_by not in ("LogStreamName", "LastEventTime"):
        raise LogsInvalidParameter(
            f"1 validation error detected: Value '{order_by}' at 'orderBy' failed to satisfy "
            "constraint: Member must satisfy enum value set: [LogStreamName, LastEventTime]"
        )
    if prefix and order_by == "LastEventTime":
        raise LogsInvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.")

    streams = [s for s in ctx.logs.streams(group) if s.name.startswith(prefix)]
    if order_by == "LastEventTime":
        streams.sort(key=lambda s: (s.last_event or 0, s.name))
    if body.get("descending"):
        streams.reverse()
    page, token = _page(streams, body, limit)

    region, account = ctx.scope.region, ctx.scope.account_id
    found = []
    for stream in page:
        doc = {
            "logStreamName": stream.name,
            "creationTime": stream.created,
            "firstEventTimestamp": stream.first_event,
            "lastEventTimestamp": stream.last_event,
            "lastIngestionTime": stream.last_ingestion,
            "arn": f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:{stream.name}",
            "storedBytes": 0,
        }
        found.append({k: v for k, v in doc.items() if v is not None})
    return _with_token({"logStreams": found}, token)


def get_log_events(ctx: FrontendContext, body: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(body)
    stream = _string(body, "logStreamName")
    if not stream:
        raise LogsInvalidParameter("logStreamName is required")
    limit = _limit(body, 10_000)
    token = _string(body, "nextToken")
    direction, position = _stream_token(token) if token else ("", None)

    # Forward from a token or from the head; otherwise the newest events, backward.
    forward = direction == "f" or (direction == "" and bool(body.get("startFromHead")))
    events = ctx.logs.stream_events(
        group,
        stream,
        _time(body, "startTime"),
        _time(body, "endTime"),
        after_id=position if direction == "f" else None,
        before_id=position if direction == "b" else None,
        limit=limit,
        from_head=forward,
    )
    events = _within_answer_size(events, keep_last=not forward)

    if events:
        forward_token = f"f/{events[-1].event_id:056d}"
        backward_token = f"b/{events[0].event_id:056d}"
    else:
        # At either end of the stream, Lambda hands back the token it was given.
        here = position or 0
        forward_token = token if direction == "f" else f"f/{here:056d}"
        backward_token = token if direction == "b" else f"b/{here:056d}"
    return {
        "events": [
            {"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion}
            for e in events
        ],
        "nextForwardToken": forward_token,
        "nextBackwardToken": backward_token,
    }


def filter_log_events(ctx: FrontendContext, body: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(body)
    limit = _limit(body, 10_000)
    names = body.get("logStreamNames")
    prefix = _string(body, "logStreamNamePrefix")
    if names and prefix:
        raise LogsInvalidParameter(
            "logStreamNames and logStreamNamePrefix are mutually exclusive parameters."
        )
    matcher = pattern.parse(_string(body, "filterPattern"))
    end = _time(body, "endTime")
    token = _string(body, "nextToken")
    after = _filter_token(token) if token else None

    events: list[Event] = []
    size, last = 0, None
    exhausted = True
    scan = ctx.logs.scan(
        group, names, prefix, _time(body, "startTime"), None if end is None else end + 1, after
    )
    for scanned, event in enumerate(scan, start=1):
        last = (event.timestamp, event.event_id)
        if matcher.matches(event.message):
            events.append(event)
            size += len(event.message) + 26
        if len(events) >= limit or size >= MAX_ANSWER_BYTES or scanned >= SCAN_BUDGET:
            exhausted = False
            break
    scan.close()

    answer: dict[str, Any] = {
        "events": [
            {
                "logStreamName": e.stream,
                "timestamp": e.timestamp,
                "message": e.message,
                "ingestionTime": e.ingestion,
                "eventId": f"{e.event_id:056d}",
            }
            for e in events
        ],
        "searchedLogStreams": [],
    }
    if not exhausted and last is not None:
        answer["nextToken"] = _encode_token(f"{last[0]}:{last[1]}")
    return answer


def put_retention_policy(ctx: FrontendContext, body: dict[str, Any]) -> dict[str, Any]:
    group = _group_name(body)
    days = body.get("retentionInDays")
    if days not in RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in RETENTION_DAYS)
        raise LogsInvalidParameter(
            f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to "
            f"satisfy constraint: Member must satisfy enum value set: [{allowed}]"
        )
    ctx.logs.put_retention(group, int(days))
    log.info("log retention set group=%s days=%s", group, days)
    return {}


def delete_retention_policy(ctx: FrontendContext, body: dict[str, Any]) -> dict[str, Any]:
    ctx.logs.delete_retention(_group_name(body))
    return {}


_OPERATIONS: dict[str, Operation] = {
    "DescribeLogGroups": describe_log_groups,
    "DescribeLogStreams": describe_log_streams,
    "GetLogEvents": get_log_events,
    "FilterLogEvents": filter_log_events,
    "PutRetentionPolicy": put_retention_policy,
    "DeleteRetentionPolicy": delete_retention_policy,
}


# Parameters


def _string(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise LogsInvalidParameter(f"{key} must be a string")
    return value


def _group_name(body: dict[str, Any]) -> str:
    """logGroupName, or logGroupIdentifier (a name or an ARN)."""
    name = _string(body, "logGroupName")
    identifier = _string(body, "logGroupIdentifier")
    if name and identifier:
        raise LogsInvalidParameter(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters."
        )
    if identifier and identifier.startswith("arn:"):
        identifier = identifier.split(":log-group:", 1)[-1].removesuffix(":*")
    group = name or identifier
    if not group:
        raise LogsInvalidParameter("Either logGroupName or logGroupIdentifier is required")
    return group


def _limit(body: dict[str, Any], maximum: int) -> int:
    limit = body.get("limit", maximum)
    if not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise LogsInvalidParameter(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy "
            f"constraint: Member must have value between 1 and {maximum}"
        )
    return limit


def _time(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or value < 0):
        raise LogsInvalidParameter(f"{key} must be a time in milliseconds since the epoch")
    return value


def _within_answer_size(events: list[Event], keep_last: bool) -> list[Event]:
    """At most 1 MB of events, taken from the end the reader is moving away from."""
    ordered = events[::-1] if keep_last else events
    kept, size = [], 0
    for event in ordered:
        size += len(event.message.encode()) + 26
        if size > MAX_ANSWER_BYTES and kept:
            break
        kept.append(event)
    return kept[::-1] if keep_last else kept


# Paging tokens: opaque to callers, checked when they come back


def _page(items: list[Any], body: dict[str, Any], limit: int) -> tuple[list[Any], str | None]:
    token = _string(body, "nextToken")
    start = int(_decode_token(token)) if token else 0
    end = start + limit
    return items[start:end], _encode_token(str(end)) if end < len(items) else None


def _with_token(answer: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token is not None:
        answer["nextToken"] = token
    return answer


def _stream_token(token: str) -> tuple[str, int]:
    direction, _, number = token.partition("/")
    if direction not in ("f", "b") or not number.isdigit():
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return direction, int(number)


def _filter_token(token: str) -> tuple[int, int]:
    stamp, _, event_id = _decode_token(token).partition(":")
    if not stamp.isdigit() or not event_id.isdigit():
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return int(stamp), int(event_id)


def _encode_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except ValueError as exc:
        raise LogsInvalidParameter("The specified nextToken is invalid.") from exc
    if not text.replace(":", "").isdigit():
        raise LogsInvalidParameter("The specified nextToken is invalid.")
    return text
