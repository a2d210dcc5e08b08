"""A sandbox's output as the events of its log stream: one event per line, stamped on arrival."""

from __future__ import annotations

from lamina.clock import Clock
from lamina.logs.store import MAX_EVENT_BYTES, LogStore


class StreamSink:
    """Where a sandbox's log pipe writes: whole lines become events of one stream."""

    def __init__(self, store: LogStore, group: str, stream: str, clock: Clock) -> None:
        self._store = store
        self._group = group
        self._stream = stream
        self._clock = clock
        self._partial = b""
        store.create_stream(group, stream)

    def write(self, data: bytes) -> int:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        # A line that never ends still becomes events, one largest event at a time.
        while len(self._partial) >= MAX_EVENT_BYTES:
            lines.append(self._partial[:MAX_EVENT_BYTES])
            self._partial = self._partial[MAX_EVENT_BYTES:]
        self._append(lines)
        return len(data)

    def flush(self) -> None:
        """End a line the runtime left open: it is an event of its own, as in Lambda."""
        if self._partial:
            self._append([self._partial])
            self._partial = b""

    def close(self) -> None:
        self.flush()

    def _append(self, lines: list[bytes]) -> None:
        if lines:
            now = int(self._clock.time() * 1000)
            self._store.append(
                self._group,
                self._stream,
                [(now, line.decode("utf-8", "replace")) for line in lines],
            )
