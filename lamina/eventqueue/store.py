"""Accepted events and invoke configs in SQLite (WAL, synchronous=FULL) in the data directory.

Every write is one transaction, and a transaction is on disk (fsync) when its call returns: the
frontend answers 202 only after `insert_many` has returned. One connection serves the whole
process, behind a lock, so it may be called from a writer thread and the event loop alike.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lamina.eventqueue.model import (
    Attempt,
    AttemptKind,
    Condition,
    FailedEvent,
    FunctionCounters,
    InvokeConfig,
    QueuedEvent,
    QueueSnapshot,
)
from lamina.eventqueue.policy import Retry
from lamina.tenancy import DEFAULT_ACCOUNT, adopt_unqualified

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    request_id TEXT PRIMARY KEY,
    function TEXT NOT NULL, -- the function's key, ACCOUNT:NAME
    function_arn TEXT NOT NULL,
    invoked_arn TEXT NOT NULL,
    payload BLOB NOT NULL,
    trace_id TEXT NOT NULL,
    enqueued_at REAL NOT NULL,
    next_at REAL NOT NULL,
    invokes INTEGER NOT NULL DEFAULT 0,
    throttles INTEGER NOT NULL DEFAULT 0,
    last_kind TEXT,
    last_payload BLOB,
    last_error TEXT,
    last_status INTEGER,
    last_version TEXT,
    lease_token TEXT,
    lease_until REAL,
    state TEXT NOT NULL DEFAULT 'queued',
    condition TEXT,
    failed_at REAL
);
CREATE INDEX IF NOT EXISTS events_due ON events (state, next_at);
CREATE INDEX IF NOT EXISTS events_function ON events (function, state);
CREATE TABLE IF NOT EXISTS invoke_configs (
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (function, qualifier)
);
"""

_COLUMNS = (
    "request_id, function, function_arn, invoked_arn, payload, trace_id, enqueued_at, next_at, "
    "invokes, throttles, last_kind, last_payload, last_error, last_status, last_version"
)
QUEUED = "queued"
FAILED = "failed"


class EventStore:
    """Events and invoke configs of every account, each under its function's key."""

    def __init__(self, path: Path, account_id: str = DEFAULT_ACCOUNT) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # Events and configs kept before accounts belong to the account served then.
        adopt_unqualified(
            self._db, [("events", "function"), ("invoke_configs", "function")], account_id
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # Accepting

    def insert_many(self, events: Iterable[QueuedEvent]) -> None:
        """Keep accepted events; on disk when this returns."""
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                [_row(event) for event in events],
            )

    # Leasing

    def lease(
        self, now: float, limit: int, owner: str, seconds: Callable[[str], float]
    ) -> list[QueuedEvent]:
        """Lease up to `limit` due events; `seconds(function)` is how long each lease lasts.

        A leased event is handed to no one else until its lease runs out or is given back.
        """
        with self._transaction() as db:
            # Oldest due first over all functions: no per-function fairness yet, so one
            # function's large backlog delays the events of the others.
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE state = ? AND next_at <= ? "
                "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at LIMIT ?",
                (QUEUED, now, now, limit),
            ).fetchall()
            leased = []
            for row in rows:
                event = _event(row, lease=f"{owner}/{secrets.token_hex(6)}")
                db.execute(
                    "UPDATE events SET lease_token = ?, lease_until = ? WHERE request_id = ?",
                    (event.lease, now + seconds(event.function), event.request_id),
                )
                leased.append(event)
        return leased

    def release_all_leases(self) -> int:
        """Give back every lease: called when the process that held them is known dead."""
        with self._transaction() as db:
            count = db.execute(
                "UPDATE events SET lease_token = NULL, lease_until = NULL "
                "WHERE lease_token IS NOT NULL"
            ).rowcount
        return count

    def reschedule(self, event: QueuedEvent, retry: Retry, attempt: Attempt) -> bool:
        """Put a leased event back for a later attempt; False if its lease was lost."""
        with self._transaction() as db:
            return _owned(
                db.execute(
                    "UPDATE events SET next_at = ?, invokes = ?, throttles = ?, last_kind = ?, "
                    "last_payload = ?, last_error = ?, last_status = ?, last_version = ?, "
                    "lease_token = NULL, lease_until = NULL "
                    "WHERE request_id = ? AND lease_token = ?",
                    (
                        retry.at,
                        retry.invokes,
                        retry.throttles,
                        *_attempt_columns(attempt),
                        event.request_id,
                        event.lease,
                    ),
                )
            )

    def finish(self, event: QueuedEvent, then: QueuedEvent | None = None) -> bool:
        """Remove a leased event, and in the same transaction queue `then` (its record)."""
        with self._transaction() as db:
            owned = _owned(
                db.execute(
                    "DELETE FROM events WHERE request_id = ? AND lease_token = ?",
                    (event.request_id, event.lease),
                )
            )
            if owned and then is not None:
                db.execute(
                    f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 15)})", _row(then)
                )
        return owned

    def keep_failed(
        self,
        event: QueuedEvent,
        condition: Condition,
        invokes: int,
        attempt: Attempt | None,
        now: float,
    ) -> bool:
        """Keep a leased event that failed with no destination, for `failed` and `replay`."""
        columns = _attempt_columns(attempt) if attempt else (None,) * 5
        with self._transaction() as db:
            return _owned(
                db.execute(
                    "UPDATE events SET state = ?, condition = ?, failed_at = ?, invokes = ?, "
                    "last_kind = ?, last_payload = ?, last_error = ?, last_status = ?, "
                    "last_version = ?, lease_token = NULL, lease_until = NULL "
                    "WHERE request_id = ? AND lease_token = ?",
                    (
                        FAILED,
                        condition.value,
                        now,
                        invokes,
                        *columns,
                        event.request_id,
                        event.lease,
                    ),
                )
            )

    # Failed events

    def failed(self, function: str | None = None) -> list[FailedEvent]:
        query = f"SELECT {_COLUMNS}, condition, failed_at FROM events WHERE state = ?"
        params: tuple[str, ...] = (FAILED,)
        if function is not None:
            query += " AND function = ?"
            params += (function,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY failed_at", params).fetchall()
        return [FailedEvent(_event(row[:15]), Condition(row[15]), row[16]) for row in rows]

    def replay(
        self, now: float, function: str | None = None, request_ids: Iterable[str] = ()
    ) -> int:
        """Queue failed events again as if just accepted; they keep their request ids."""
        where = "state = ?"
        params: list[object] = [FAILED]
        if function is not None:
            where += " AND function = ?"
            params.append(function)
        ids = list(request_ids)
        if ids:
            where += f" AND request_id IN ({', '.join('?' * len(ids))})"
            params.extend(ids)
        with self._transaction() as db:
            return db.execute(
                "UPDATE events SET state = ?, condition = NULL, failed_at = NULL, "
                "enqueued_at = ?, next_at = ?, invokes = 0, throttles = 0, last_kind = NULL, "
                "last_payload = NULL, last_error = NULL, last_status = NULL, "
                f"last_version = NULL WHERE {where}",
                (QUEUED, now, now, *params),
            ).rowcount

    def forget(self, function: str) -> None:
        """A deleted function: its queued events and invoke configs go; failed ones stay."""
        with self._transaction() as db:
            db.execute("DELETE FROM events WHERE function = ? AND state = ?", (function, QUEUED))
            db.execute("DELETE FROM invoke_configs WHERE function = ?", (function,))

    # Reports

    def snapshot(self, now: float) -> QueueSnapshot:
        with self._lock:
            rows = self._db.execute(
                "SELECT function, state, COUNT(*), MIN(enqueued_at), "
                "SUM(MAX(invokes - 1, 0)), SUM(throttles), SUM(lease_until > ?) FROM events "
                "GROUP BY function, state",
                (now,),
            ).fetchall()
        counters: dict[str, FunctionCounters] = {}
        for function, state, count, oldest, retries, throttles, leased in rows:
            current = counters.get(function, FunctionCounters())
            if state == QUEUED:
                current = dataclasses.replace(
                    current,
                    queued=count,
                    leased=leased or 0,
                    oldest_age_s=max(0.0, now - oldest),
                    retries=retries or 0,
                    throttles=throttles or 0,
                )
            else:
                current = dataclasses.replace(current, failed=count)
            counters[function] = current
        return QueueSnapshot(counters)

    # Invoke configs

    def configs(self) -> list[InvokeConfig]:
        with self._lock:
            rows = self._db.execute("SELECT function, config FROM invoke_configs").fetchall()
        return [InvokeConfig(**{**json.loads(doc), "function": key}) for key, doc in rows]

    def put_config(self, config: InvokeConfig) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO invoke_configs (function, qualifier, config) "
                "VALUES (?, ?, ?)",
                (config.function, config.qualifier, json.dumps(config.__dict__)),
            )

    def delete_config(self, function: str, qualifier: str) -> None:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM invoke_configs WHERE function = ? AND qualifier = ?",
                (function, qualifier),
            )


def _owned(cursor: sqlite3.Cursor) -> bool:
    if cursor.rowcount == 0:
        log.warning("event lease lost before its outcome was written")
    return cursor.rowcount > 0


def _row(event: QueuedEvent) -> tuple[object, ...]:
    attempt = _attempt_columns(event.last) if event.last else (None,) * 5
    return (
        event.request_id, event.function, event.function_arn, event.invoked_arn, event.payload,
        event.trace_id, event.enqueued_at, event.next_at, event.invokes, event.throttles,
        *attempt,
    )  # fmt: skip


def _attempt_columns(attempt: Attempt) -> tuple[object, ...]:
    return (
        attempt.kind.value,
        attempt.payload,
        attempt.function_error,
        attempt.status_code,
        attempt.executed_version,
    )


def _event(row: tuple[object, ...], lease: str | None = None) -> QueuedEvent:
    fields: tuple[Any, ...] = row
    kind, last_payload, last_error, last_status, last_version = fields[10:15]
    last = None
    if kind is not None:
        last = Attempt(
            AttemptKind(kind), bytes(last_payload or b""), last_error, last_status, last_version
        )
    request_id, function, function_arn, invoked_arn, payload, trace_id = fields[:6]
    enqueued_at, next_at, invokes, throttles = fields[6:10]
    return QueuedEvent(
        request_id, function, function_arn, invoked_arn, bytes(payload), trace_id,
        enqueued_at, next_at, invokes, throttles, last, lease,
    )  # fmt: skip
