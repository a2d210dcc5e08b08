"""Function logs in SQLite: log groups, their streams, and timestamped events.

Workers append (each sandbox writes one stream of its function's group); the frontend reads
for the CloudWatch Logs API. Both open the same file in WAL mode, so they work side by side.
Every group keeps at most `max_group_bytes` of messages (the oldest events go first) and, if
it has a retention policy, no event older than that many days.

Groups are kept per account: the `name`/`group_name` columns hold `ACCOUNT:GROUP`, and a store
reads and writes the groups of one account (`for_account`), named without the prefix.
"""

from __future__ import annotations

import copy
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lamina.clock import Clock
from lamina.tenancy import DEFAULT_ACCOUNT, adopt_unqualified, qualify, split

log = logging.getLogger(__name__)

DEFAULT_MAX_GROUP_BYTES = 16 * 1024 * 1024
# CloudWatch's largest event; longer lines are split into events of this size.
MAX_EVENT_BYTES = 256 * 1024
RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
_DAY_MS = 86_400_000
_EXPIRY_INTERVAL_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    retention_days INTEGER,
    stored_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS streams (
    group_name TEXT NOT NULL,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    first_event INTEGER,
    last_event INTEGER,
    last_ingestion INTEGER,
    PRIMARY KEY (group_name, name)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name TEXT NOT NULL,
    stream_name TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    ingestion INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_of_stream ON events (group_name, stream_name, id);
CREATE INDEX IF NOT EXISTS events_by_time ON events (group_name, timestamp, id);
"""


class LogStoreError(Exception):
    """Base of the log store's errors."""


class GroupMissing(LogStoreError):
    pass


class StreamMissing(LogStoreError):
    pass


@dataclass(frozen=True)
class Group:
    name: str
    created: int
    retention_days: int | None
    stored_bytes: int


@dataclass(frozen=True)
class Stream:
    name: str
    created: int
    first_event: int | None
    last_event: int | None
    last_ingestion: int | None


@dataclass(frozen=True)
class Event:
    event_id: int
    stream: str
    timestamp: int
    ingestion: int
    message: str


class LogStore:
    """The log groups of one account (`account_id`); `for_account` gives another's."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
        account_id: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.account_id = account_id
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(_SCHEMA)
        # Groups kept before accounts belong to the account served then.
        with self._transaction():
            adopt_unqualified(
                self._db,
                [("groups", "name"), ("streams", "group_name"), ("events", "group_name")],
                account_id,
            )
        self._clock = clock
        self.max_group_bytes = max_group_bytes
        self._expired_at = float("-inf")

    def for_account(self, account_id: str) -> LogStore:
        """The same store, reading and writing `account_id`'s groups."""
        view = copy.copy(self)
        view.account_id = account_id
        return view

    def _qualified(self, group: str) -> str:
        return qualify(self.account_id, group)

    def close(self) -> None:
        self._db.close()

    def now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    # Writing

    def create_stream(self, group: str, stream: str) -> None:
        group = self._qualified(group)
        now = self.now_ms()
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO groups (name, created) VALUES (?, ?)", (group, now)
            )
            self._db.execute(
                "INSERT OR IGNORE INTO streams (group_name, name, created) VALUES (?, ?, ?)",
                (group, stream, now),
            )

    def append(self, group: str, stream: str, events: Iterable[tuple[int, str]]) -> None:
        """Store events (timestamp ms, message) of one stream; the group's bound holds after."""
        group = self._qualified(group)
        rows = [(group, stream, stamp, message) for stamp, message in _split_long(events)]
        if not rows:
            return
        now = self.now_ms()
        size = sum(len(row[3]) for row in rows)
        with self._transaction():
            self._db.executemany(
                "INSERT INTO events (group_name, stream_name, timestamp, ingestion, message) "
                f"VALUES (?, ?, ?, {now}, ?)",
                rows,
            )
            self._db.execute(
                "UPDATE streams SET first_event = COALESCE(first_event, ?), last_event = ?, "
                "last_ingestion = ? WHERE group_name = ? AND name = ?",
                (rows[0][2], rows[-1][2], now, group, stream),
            )
            stored = self._db.execute(
                "UPDATE groups SET stored_bytes = stored_bytes + ? WHERE name = ? "
                "RETURNING stored_bytes",
                (size, group),
            ).fetchone()
            if stored is not None and stored[0] > self.max_group_bytes:
                self._trim(group, stored[0])
        self.expire()

    def _trim(self, group: str, stored: int) -> None:
        """Drop the group's oldest events until it holds at most 3/4 of its bound."""
        excess = stored - self.max_group_bytes * 3 // 4
        dropped, last_id = 0, None
        cursor = self._db.execute(
            "SELECT id, length(message) FROM events WHERE group_name = ? ORDER BY id", (group,)
        )
        for event_id, size in cursor:
            dropped += size
            last_id = event_id
            if dropped >= excess:
                break
        cursor.close()
        if last_id is None:
            return
        self._db.execute("DELETE FROM events WHERE group_name = ? AND id <= ?", (group, last_id))
        self._db.execute(
            "UPDATE groups SET stored_bytes = stored_bytes - ? WHERE name = ?", (dropped, group)
        )
        log.debug("log group %s over its bound: %d bytes of old events dropped", group, dropped)

    def put_retention(self, group: str, days: int) -> None:
        group = self._qualified(group)
        self._group(group)
        self._db.execute("UPDATE groups SET retention_days = ? WHERE name = ?", (days, group))
        self._expired_at = float("-inf")
        self.expire()

    def delete_retention(self, group: str) -> None:
        group = self._qualified(group)
        self._group(group)
        self._db.execute("UPDATE groups SET retention_days = NULL WHERE name = ?", (group,))

    def expire(self) -> None:
        """Delete events past their group's retention; at most once a minute."""
        if self._clock.monotonic() - self._expired_at < _EXPIRY_INTERVAL_S:
            return
        self._expired_at = self._clock.monotonic()
        now = self.now_ms()
        policies = self._db.execute(
            "SELECT name, retention_days FROM groups WHERE retention_days IS NOT NULL"
        ).fetchall()
        for group, days in policies:
            with self._transaction():
                cutoff = now - days * _DAY_MS
                gone = self._db.execute(
                    "SELECT COALESCE(SUM(length(message)), 0) FROM events "
                    "WHERE group_name = ? AND timestamp < ?",
                    (group, cutoff),
                ).fetchone()[0]
                self._db.execute(
                    "DELETE FROM events WHERE group_name = ? AND timestamp < ?", (group, cutoff)
                )
                self._db.execute(
                    "UPDATE groups SET stored_bytes = stored_bytes - ? WHERE name = ?",
                    (gone, group),
                )

    # Reading

    def groups(self, prefix: str = "") -> list[Group]:
        prefix = self._qualified(prefix)
        rows = self._db.execute(
            "SELECT name, created, retention_days, stored_bytes FROM groups "
            "WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        ).fetchall()
        return [Group(split(name)[1], *rest) for name, *rest in rows]

    def streams(self, group: str) -> list[Stream]:
        group = self._qualified(group)
        self._group(group)
        rows = self._db.execute(
            "SELECT name, created, first_event, last_event, last_ingestion FROM streams "
            "WHERE group_name = ? ORDER BY name",
            (group,),
        ).fetchall()
        return [Stream(*row) for row in rows]

    def stream_events(
        self,
        group: str,
        stream: str,
        start: int | None,
        end: int | None,
        after_id: int | None = None,
        before_id: int | None = None,
        limit: int = 10_000,
        from_head: bool = True,
    ) -> list[Event]:
        """Events of one stream in order; the first `limit` (from_head) or the last ones."""
        group = self._qualified(group)
        self.expire()
        self._stream(group, stream)
        clauses, args = _conditions(
            ("timestamp >= ?", start),
            ("timestamp < ?", end),
            ("id > ?", after_id),
            ("id < ?", before_id),
        )
        order = "ASC" if from_head else "DESC"
        rows = self._db.execute(
            "SELECT id, stream_name, timestamp, ingestion, message FROM events "
            "WHERE group_name = ? AND stream_name = ? "
            + "".join(f" AND {c}" for c in clauses)
            + f" ORDER BY id {order} LIMIT ?",
            (group, stream, *args, limit),
        ).fetchall()
        events = [Event(*row) for row in rows]
        return events if from_head else events[::-1]

    def scan(
        self,
        group: str,
        streams: list[str] | None,
        stream_prefix: str | None,
        start: int | None,
        end: int | None,
        after: tuple[int, int] | None,
    ) -> Iterator[Event]:
        """Events of a group in time order (ties by arrival), after the (timestamp, id) given."""
        group = self._qualified(group)
        self.expire()
        self._group(group)
        clauses, args = _conditions(("timestamp >= ?", start), ("timestamp < ?", end))
        if streams:
            clauses.append(f"stream_name IN ({', '.join('?' * len(streams))})")
            args.extend(streams)
        if stream_prefix:
            clauses.append("substr(stream_name, 1, ?) = ?")
            args.extend([len(stream_prefix), stream_prefix])
        if after is not None:
            clauses.append("(timestamp > ? OR (timestamp = ? AND id > ?))")
            args.extend([after[0], after[0], after[1]])
        cursor = self._db.execute(
            "SELECT id, stream_name, timestamp, ingestion, message FROM events "
            "WHERE group_name = ?"
            + "".join(f" AND {c}" for c in clauses)
            + " ORDER BY timestamp, id",
            (group, *args),
        )
        try:
            for row in cursor:
                yield Event(*row)
        finally:
            cursor.close()

    def _group(self, group: str) -> None:
        row = self._db.execute("SELECT 1 FROM groups WHERE name = ?", (group,)).fetchone()
        if row is None:
            raise GroupMissing(group)

    def _stream(self, group: str, stream: str) -> None:
        self._group(group)
        row = self._db.execute(
            "SELECT 1 FROM streams WHERE group_name = ? AND name = ?", (group, stream)
        ).fetchone()
        if row is None:
            raise StreamMissing(stream)

    def _transaction(self) -> sqlite3.Connection:
        # The connection as a context manager commits or rolls back; BEGIN makes it one unit.
        self._db.execute("BEGIN IMMEDIATE")
        return self._db


def _conditions(*bounds: tuple[str, int | None]) -> tuple[list[str], list[object]]:
    """The SQL conditions of the bounds that are set, with their arguments."""
    present = [(condition, value) for condition, value in bounds if value is not None]
    return [condition for condition, _ in present], [value for _, value in present]


def _split_long(events: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    for stamp, message in events:
        if len(message) <= MAX_EVENT_BYTES:
            yield stamp, message
            continue
        for offset in range(0, len(message), MAX_EVENT_BYTES):
            yield stamp, message[offset : offset + MAX_EVENT_BYTES]
