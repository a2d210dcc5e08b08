"""What a sandbox writes to its log, read without blocking the worker's event loop.

Two pipes come out of every sandbox: stdout and stderr merged, read line by line, and the
telemetry pipe whose descriptor the runtime finds in `_LAMBDA_TELEMETRY_LOG_FD`, as on Lambda.
On the telemetry pipe a runtime writes framed records, so a record keeps its line breaks and
is still one event:

    +--------------------+-----------------+--------------------------+-------------+
    | type, 4 bytes      | length, 4 bytes | timestamp (us), 8 bytes  | message     |
    | 0xA55A....         | big-endian      | big-endian               | UTF-8       |
    +--------------------+-----------------+--------------------------+-------------+

Both feed the sandbox's log stream and one buffer of recent output, from which the worker
takes each invocation's log tail.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Protocol

log = logging.getLogger(__name__)

TELEMETRY_FD_VARIABLE = "_LAMBDA_TELEMETRY_LOG_FD"
_FRAME_MAGIC = b"\xa5\x5a"
_FRAME_HEADER_BYTES = 16
# A frame longer than this is not a log record: the pipe is read no further.
_MAX_FRAME_BYTES = 16 * 1024 * 1024
# The worker keeps only this much of an invocation's output in memory: enough for the 4 KB
# log tail; the whole output goes to the log store as it arrives.
_KEPT_OUTPUT_BYTES = 64 * 1024
# How much one wake-up of a reader takes, so a function that floods its log cannot hold the
# worker's event loop.
_READS_PER_WAKEUP = 16


class LogSink(Protocol):
    """Where a sandbox's log goes (its stream in the log store)."""

    def write(self, data: bytes) -> int: ...

    def write_event(self, timestamp_ms: int, message: str) -> None: ...

    def flush(self) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


class SandboxOutput:
    """The sandbox's two log pipes, its log sink and the recent output they share."""

    def __init__(self, stdout_fd: int, telemetry_fd: int, sink: LogSink | None) -> None:
        self.sink = sink
        self.recent = bytearray()
        self._frames = bytearray()
        self._readers = {
            stdout_fd: self._accept_lines,
            telemetry_fd: self._accept_frames,
        }
        loop = asyncio.get_running_loop()
        for fd in self._readers:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._read, fd, _READS_PER_WAKEUP)

    def take(self) -> bytes:
        """Everything written since the last take (its last 64 KB)."""
        self.drain()
        data = bytes(self.recent)
        self.recent.clear()
        return data

    def platform_line(self, text: str) -> None:
        """Write one of the platform's own lines, after ending any line left open."""
        if self.sink is not None:
            self.sink.flush()
            self.sink.write(text.encode())

    def sync(self) -> None:
        if self.sink is not None:
            self.sink.sync()

    def drain(self) -> None:
        # Everything the runtime wrote before it posted its answer is already in the pipes,
        # so reading until EAGAIN here attributes it to the right invocation.
        for fd in list(self._readers):
            self._read(fd, None)

    def close(self) -> None:
        """Stop reading; the sink closes with the pipes, since only they write it."""
        for fd in list(self._readers):
            self._stop(fd)
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def _read(self, fd: int, reads: int | None) -> None:
        while fd in self._readers and (reads is None or reads > 0):
            if reads is not None:
                reads -= 1
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._stop(fd)
                return
            self._readers[fd](fd, chunk)

    def _stop(self, fd: int) -> None:
        if self._readers.pop(fd, None) is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    def _keep(self, data: bytes) -> None:
        self.recent += data
        if len(self.recent) > _KEPT_OUTPUT_BYTES:
            del self.recent[:-_KEPT_OUTPUT_BYTES]

    def _accept_lines(self, fd: int, chunk: bytes) -> None:
        self._keep(chunk)
        if self.sink is not None:
            self.sink.write(chunk)

    def _accept_frames(self, fd: int, chunk: bytes) -> None:
        self._frames += chunk
        while len(self._frames) >= _FRAME_HEADER_BYTES:
            header = self._frames[:_FRAME_HEADER_BYTES]
            length = int.from_bytes(header[4:8], "big")
            if header[:2] != _FRAME_MAGIC or length > _MAX_FRAME_BYTES:
                log.debug("telemetry pipe: not a log frame; no longer read")
                self._frames.clear()
                self._stop(fd)
                return
            end = _FRAME_HEADER_BYTES + length
            if len(self._frames) < end:
                return
            message = bytes(self._frames[_FRAME_HEADER_BYTES:end]).decode("utf-8", "replace")
            timestamp_ms = int.from_bytes(header[8:16], "big") // 1000
            del self._frames[:end]
            self._record(timestamp_ms, message.removesuffix("\n"))

    def _record(self, timestamp_ms: int, message: str) -> None:
        self._keep(message.encode() + b"\n")
        if self.sink is not None:
            self.sink.flush()
            self.sink.write_event(timestamp_ms, message)
