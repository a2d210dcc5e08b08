"""A sandbox's output as the events of its log stream: one event per line, stamped on arrival.

Events are written to the store in batches: at the end of each invocation (`sync`), when a
batch grows past `BATCH_BYTES`, or on the first write a second after the batch began. One
transaction per invocation keeps the log store off the warm invoke's path.
"""

from __future__ import annotations

from lamina.clock import Clock
from lamina.logs.store import MAX_EVENT_BYTES, LogStore

BATCH_BYTES = 256 * 1024
BATCH_SECONDS = 1.0


class StreamSink:
    """Where a sandbox's log pipe writes: whole lines become events of one stream."""

    def __init__(self, store: LogStore, group: str, stream: str, clock: Clock) -> None:
        self._store = store
        self._group = group
        self._stream = stream
        self._clock = clock
        self._partial = b""
        self._batch: list[tuple[int, str]] = []
        self._batch_bytes = 0
        self._batch_began = 0.0
        store.create_stream(group, stream)

    def write(self, data: bytes) -> int:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        # A line that never ends still becomes events, one largest event at a time.
        while len(self._partial) >= MAX_EVENT_BYTES:
            lines.append(self._partial[:MAX_EVENT_BYTES])
            self._partial = self._partial[MAX_EVENT_BYTES:]
        self._add(lines)

        late = self._clock.monotonic() - self._batch_began >= BATCH_SECONDS
        if self._batch and (self._batch_bytes >= BATCH_BYTES or late):
            self.sync()
        return len(data)

    def write_event(self, timestamp_ms: int, message: str) -> None:
        """One whole record, as a runtime frames it on the telemetry pipe, newlines and all."""
        self._queue(timestamp_ms, message)
        if self._batch_bytes >= BATCH_BYTES:
            self.sync()

    def flush(self) -> None:
        """End a line the runtime left open: it is an event of its own, as in Lambda."""
        if self._partial:
            self._add([self._partial])
            self._partial = b""

    def sync(self) -> None:
        """Write the events gathered so far to the store."""
        if self._batch:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            self._store.append(self._group, self._stream, batch)

    def close(self) -> None:
        self.flush()
        self.sync()

    def _add(self, lines: list[bytes]) -> None:
        now = int(self._clock.time() * 1000)
        for line in lines:
            self._queue(now, line.decode("utf-8", "replace"))

    def _queue(self, timestamp_ms: int, message: str) -> None:
        if not self._batch:
            self._batch_began = self._clock.monotonic()
        self._batch.append((timestamp_ms, message))
        self._batch_bytes += len(message)
