"""The log store, its stream sink and filter patterns, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.clock import FakeClock
from lamina.logs import pattern
from lamina.logs.sink import StreamSink
from lamina.logs.store import MAX_EVENT_BYTES, GroupMissing, LogStore, StreamMissing

GROUP = "/aws/lambda/fn"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[LogStore]:
    opened = LogStore(tmp_path / "logs.db", clock, max_group_bytes=1000)
    yield opened
    opened.close()


def messages(store: LogStore, stream: str = "s1") -> list[str]:
    return [e.message for e in store.stream_events(GROUP, stream, None, None)]


def test_a_sink_turns_lines_into_events_stamped_when_they_arrive(
    store: LogStore, clock: FakeClock
) -> None:
    sink = StreamSink(store, GROUP, "s1", clock)

    sink.write(b"first\nsec")
    clock.advance(2)
    sink.write(b"ond\nopen line")
    sink.flush()
    sink.sync()

    events = store.stream_events(GROUP, "s1", None, None)
    assert [e.message for e in events] == ["first", "second", "open line"]
    start = int(clock.time() * 1000) - 2000
    assert [e.timestamp for e in events] == [start, start + 2000, start + 2000]


def test_a_sink_writes_in_batches_at_sync_or_a_second_after_the_batch_began(
    store: LogStore, clock: FakeClock
) -> None:
    sink = StreamSink(store, GROUP, "s1", clock)

    sink.write(b"held\n")
    held = messages(store)
    clock.advance(1)
    sink.write(b"late\n")

    assert held == []
    assert messages(store) == ["held", "late"]


def test_a_line_longer_than_the_largest_event_is_split(tmp_path: Path, clock: FakeClock) -> None:
    store = LogStore(tmp_path / "big.db", clock)
    sink = StreamSink(store, GROUP, "s1", clock)

    sink.write(b"y" * (MAX_EVENT_BYTES * 2 + 10) + b"\n")
    sink.close()

    assert [len(m) for m in messages(store)] == [MAX_EVENT_BYTES, MAX_EVENT_BYTES, 10]
    store.close()


def test_a_group_over_its_bound_drops_its_oldest_events_first(
    store: LogStore, clock: FakeClock
) -> None:
    store.create_stream(GROUP, "s1")
    store.create_stream("/aws/lambda/other", "s1")
    store.append("/aws/lambda/other", "s1", [(1, "untouched")])

    for n in range(30):
        store.append(GROUP, "s1", [(n, f"{n:02d}" + "x" * 98)])

    kept = messages(store)
    (group,) = store.groups(GROUP)
    assert group.stored_bytes <= 1000
    assert group.stored_bytes == sum(len(m) for m in kept)
    assert kept[-1].startswith("29")
    assert kept[0] > "00"
    assert [e.message for e in store.stream_events("/aws/lambda/other", "s1", None, None)] == [
        "untouched"
    ]


def test_retention_deletes_events_older_than_its_days(store: LogStore, clock: FakeClock) -> None:
    store.create_stream(GROUP, "s1")
    old = int(clock.time() * 1000)
    store.append(GROUP, "s1", [(old, "old")])
    clock.advance(2 * 86_400)
    store.append(GROUP, "s1", [(int(clock.time() * 1000), "new")])

    store.put_retention(GROUP, 1)

    assert messages(store) == ["new"]
    assert store.groups(GROUP)[0].retention_days == 1
    assert store.groups(GROUP)[0].stored_bytes == 3


def test_reading_a_missing_group_or_stream_says_which(store: LogStore) -> None:
    store.create_stream(GROUP, "s1")

    with pytest.raises(GroupMissing):
        store.streams("/aws/lambda/none")
    with pytest.raises(StreamMissing):
        store.stream_events(GROUP, "s2", None, None)


def test_a_scan_runs_in_time_order_across_streams_and_resumes_after_a_position(
    store: LogStore,
) -> None:
    for stream in ("a", "b"):
        store.create_stream(GROUP, stream)
    store.append(GROUP, "a", [(10, "a10"), (30, "a30")])
    store.append(GROUP, "b", [(20, "b20"), (30, "b30")])

    everything = list(store.scan(GROUP, None, None, None, None, None))
    resumed = list(
        store.scan(
            GROUP, None, None, None, None, (everything[1].timestamp, everything[1].event_id)
        )
    )
    only_b = list(store.scan(GROUP, ["b"], None, 25, None, None))

    assert [e.message for e in everything] == ["a10", "b20", "a30", "b30"]
    assert [e.message for e in resumed] == ["a30", "b30"]
    assert [e.message for e in only_b] == ["b30"]


@pytest.mark.parametrize(
    ("text", "message", "matches"),
    [
        ("", "anything", True),
        ("ERROR", "an ERROR here", True),
        ("ERROR", "an error here", False),
        ("ERROR timeout", "ERROR: timeout", True),
        ("ERROR timeout", "ERROR: refused", False),
        ('"timed out after"', "Task timed out after 3.00 seconds", True),
        ('"timed out after"', "timed out, after all", False),
        ("?ERROR ?WARN", "a WARN line", True),
        ("?ERROR ?WARN", "an INFO line", False),
        ("ERROR -retry", "ERROR, will retry", False),
        ("ERROR -retry", "ERROR, giving up", True),
    ],
)
def test_text_filter_patterns_match_as_cloudwatch_does(
    text: str, message: str, matches: bool
) -> None:
    assert pattern.parse(text).matches(message) is matches


POWERTOOLS_LINE = (
    '{"level":"ERROR","service":"orders","cold_start":true,"n":3,"ratio":0.5,'
    '"user":{"id":"u-17","tags":["a","b"]},"gone":null}'
)


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ('{ $.level = "ERROR" }', True),
        ("{ $.level = ERROR }", True),
        ('{ $.level = "INFO" }', False),
        ('{ $.level != "INFO" }', True),
        ('{ $.service = "ord*" }', True),
        ('{ $.user.id = "u-*" }', True),
        ('{ $.user.tags[1] = "b" }', True),
        ("{ $.n > 2 }", True),
        ("{ $.n >= 4 }", False),
        ("{ $.ratio = 0.5 }", True),
        ("{ $.cold_start IS TRUE }", True),
        ("{ $.cold_start IS FALSE }", False),
        ("{ $.gone IS NULL }", True),
        ("{ $.absent NOT EXISTS }", True),
        ('{ $.absent != "x" }', False),
        ('{ $.level = "ERROR" && $.n < 3 }', False),
        ('{ $.level = "INFO" || $.n = 3 }', True),
        ('{ ($.level = "INFO" || $.n = 3) && $.service = "orders" }', True),
    ],
)
def test_json_filter_patterns_match_members_of_json_events(text: str, matches: bool) -> None:
    assert pattern.parse(text).matches(POWERTOOLS_LINE) is matches


def test_a_json_pattern_never_matches_a_text_event() -> None:
    assert pattern.parse('{ $.level = "ERROR" }').matches("[ERROR] level = ERROR") is False


@pytest.mark.parametrize(
    "text", ["{ $.level = }", '{ $.level = "a" &&', "{ level = 1 }", "{ $.a = 1", "[ip, user]"]
)
def test_patterns_lamina_cannot_apply_are_refused(text: str) -> None:
    with pytest.raises(pattern.PatternError):
        pattern.parse(text)
