"""A sandbox's two log pipes: lines from stdout, framed records from the telemetry pipe."""

from __future__ import annotations

import os

from lamina.sandbox.output import SandboxOutput


class RecordingSink:
    def __init__(self) -> None:
        self.written = b""
        self.events: list[tuple[int, str]] = []
        self.closed = False

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def write_event(self, timestamp_ms: int, message: str) -> None:
        self.events.append((timestamp_ms, message))

    def flush(self) -> None:
        pass

    def sync(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def frame(message: str, micros: int, frame_type: int = 0xA55A0003) -> bytes:
    data = message.encode()
    return (
        frame_type.to_bytes(4, "big")
        + len(data).to_bytes(4, "big")
        + micros.to_bytes(8, "big")
        + data
    )


async def test_frames_split_across_reads_become_whole_events_with_their_timestamps() -> None:
    stdout_r, stdout_w = os.pipe()
    telemetry_r, telemetry_w = os.pipe()
    sink = RecordingSink()
    output = SandboxOutput(stdout_r, telemetry_r, sink)
    frames = frame("two\nlines\n", 1_700_000_000_123_456) + frame("next", 1_700_000_000_200_000)

    os.write(stdout_w, b"printed\n")
    os.write(telemetry_w, frames[:10])
    output.drain()
    os.write(telemetry_w, frames[10:])
    taken = output.take()

    assert sink.written == b"printed\n"
    assert sink.events == [(1_700_000_000_123, "two\nlines"), (1_700_000_000_200, "next")]
    assert taken == b"printed\ntwo\nlines\nnext\n"
    for fd in (stdout_w, telemetry_w):
        os.close(fd)
    output.close()
    assert sink.closed


async def test_a_telemetry_pipe_that_carries_no_frames_is_read_no_further() -> None:
    stdout_r, stdout_w = os.pipe()
    telemetry_r, telemetry_w = os.pipe()
    sink = RecordingSink()
    output = SandboxOutput(stdout_r, telemetry_r, sink)

    os.write(telemetry_w, b"this is not a frame at all\n")
    output.drain()
    os.write(stdout_w, b"still read\n")
    output.drain()

    assert sink.events == []
    assert sink.written == b"still read\n"
    for fd in (stdout_w, telemetry_w):
        os.close(fd)
    output.close()
