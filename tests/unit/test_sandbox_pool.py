"""The pool of blank sandboxes: filled per key, taken once, replaced, drained.

The blanks here are small real processes that speak the blank runtime's side of the
assignment channel, so the pool is tested with real process lifecycles but without bubblewrap.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator

import pytest

from lamina.sandbox.launch import Launch
from lamina.sandbox.network import NetworkMode
from lamina.sandbox.pool import Blank, PoolKey, SandboxPool, startup_matches

KEY = PoolKey("/usr/bin/python3", 512)
OTHER = PoolKey("/usr/bin/python3", 1024)
NONE = PoolKey("/usr/bin/python3", 512, NetworkMode.NONE)
WAIT_S = 60

# Says it is ready, prints what it is assigned, then waits to be killed.
_BLANK = """
import socket, sys, time
channel = socket.socket(fileno=int(sys.argv[1]))
channel.sendall(b"ready\\n")
print(channel.recv(65536).decode(), flush=True)
time.sleep(3600)
"""
# Dies before it is ready.
_BROKEN = "raise SystemExit(3)"


class ProcessBlanks:
    def __init__(self, program: str = _BLANK) -> None:
        self.program = program
        self.started: list[Blank] = []
        self.discarded: list[str] = []
        self.asked = 0
        self._ids = itertools.count(1)

    async def start_blank(self, key: PoolKey) -> Blank:
        self.asked += 1
        channel, runtime_end = socket.socketpair()
        channel.setblocking(False)
        log_r, log_w = os.pipe()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", self.program, str(runtime_end.fileno()),
            pass_fds=[runtime_end.fileno()], stdout=log_w,
        )  # fmt: skip
        runtime_end.close()
        os.close(log_w)
        blank = Blank(f"b{next(self._ids)}", key, Launch(process, log_r, -1, -1, -1, channel))
        self.started.append(blank)
        return blank

    def discard(self, blank: Blank) -> None:
        self.discarded.append(blank.blank_id)
        if blank.launch.process.returncode is None:
            blank.launch.process.kill()
        os.close(blank.launch.log_fd)


async def until(condition: object) -> None:
    """Poll an observable effect of the real processes, up to a bound."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


async def filled(source: ProcessBlanks, size: int, key: PoolKey = KEY) -> SandboxPool:
    """A pool of `size` blanks per key, holding all of them for `key`."""
    pool = SandboxPool(source, size=size)
    pool.replenish(key)
    await until(lambda: pool.counts() == {key: size})
    return pool


@pytest.fixture
async def source() -> AsyncIterator[ProcessBlanks]:
    blanks = ProcessBlanks()
    yield blanks
    for blank in blanks.started:
        if blank.launch.process.returncode is None:
            blank.launch.process.kill()
            await blank.launch.process.wait()


async def test_a_pool_fills_a_key_it_is_asked_for_to_its_size_with_ready_blanks(
    source: ProcessBlanks,
) -> None:
    pool = SandboxPool(source, size=3)

    pool.replenish(KEY)
    await until(lambda: pool.counts() == {KEY: 3} and all(b.ready for b in source.started))

    assert len(source.started) == 3
    await pool.close()


async def test_the_pool_reports_ready_blanks_by_backend_and_network_mode(
    source: ProcessBlanks,
) -> None:
    pool = SandboxPool(source, size=2)
    pool.replenish(KEY)
    pool.replenish(NONE)

    await until(lambda: pool.ready_by_mode() == {"namespace/outbound": 2, "namespace/none": 2})
    pool.take(NONE)

    assert pool.ready_by_mode()["namespace/none"] == 1
    await pool.close()


async def test_a_taken_blank_leaves_the_pool_for_good_and_two_takes_never_share_one(
    source: ProcessBlanks,
) -> None:
    pool = await filled(source, 2)

    first, second = pool.take(KEY), pool.take(KEY)

    assert first is not None and second is not None
    assert first.blank_id != second.blank_id
    assert pool.take(KEY) is None
    pool.replenish(KEY)
    await until(lambda: pool.counts() == {KEY: 2})
    assert pool.take(KEY) not in (first, second)
    await pool.close()


async def test_an_empty_pool_answers_none_so_the_sandbox_starts_cold(
    source: ProcessBlanks,
) -> None:
    pool = SandboxPool(source, size=2)

    assert pool.take(KEY) is None
    assert pool.take(OTHER) is None
    await pool.close()


async def test_a_pool_of_size_zero_never_starts_a_blank(source: ProcessBlanks) -> None:
    pool = SandboxPool(source, size=0)

    pool.replenish(KEY)
    await asyncio.sleep(0)

    assert pool.take(KEY) is None
    assert source.started == []
    await pool.close()


async def test_an_assigned_blank_reads_its_assignment_and_keeps_running(
    source: ProcessBlanks,
) -> None:
    pool = await filled(source, 1)
    blank = pool.take(KEY)
    assert blank is not None

    blank.launch.assign({"NAME": "value"}, ["--exec", "/var/task/bootstrap"])

    line = await asyncio.get_running_loop().run_in_executor(
        None, os.read, blank.launch.log_fd, 65536
    )
    assert b'"NAME": "value"' in line
    assert b'"arguments": ["--exec", "/var/task/bootstrap"]' in line
    assert blank.launch.process.returncode is None
    await pool.close()


async def test_a_blank_that_dies_in_the_pool_is_removed_and_replaced(
    source: ProcessBlanks,
) -> None:
    pool = await filled(source, 1)
    await until(lambda: source.started[0].ready)

    source.started[0].launch.process.send_signal(signal.SIGKILL)

    await until(lambda: len(source.started) == 2 and pool.counts() == {KEY: 1})
    assert "b1" in source.discarded
    taken = pool.take(KEY)
    assert taken is not None and taken.blank_id == "b2"
    await pool.close()


async def test_a_blank_that_dies_before_it_is_ready_is_not_restarted_until_asked_again(
    source: ProcessBlanks,
) -> None:
    source.program = _BROKEN
    pool = SandboxPool(source, size=2)

    pool.replenish(KEY)
    await until(lambda: "b1" in source.discarded)
    for _ in range(20):  # turns of the loop in which a restarting refill would ask again
        await asyncio.sleep(0)

    assert source.asked == 1
    assert pool.take(KEY) is None
    await pool.close()


async def test_keys_beyond_the_bound_lose_their_blanks_least_recently_asked_first(
    source: ProcessBlanks,
) -> None:
    pool = SandboxPool(source, size=1, max_keys=1)
    pool.replenish(KEY)
    await until(lambda: pool.counts() == {KEY: 1})

    pool.replenish(OTHER)

    await until(lambda: pool.counts() == {OTHER: 1})
    assert "b1" in source.discarded
    assert pool.take(KEY) is None
    await pool.close()


async def test_closing_the_pool_kills_every_blank_and_starts_no_more(
    source: ProcessBlanks,
) -> None:
    pool = await filled(source, 2)

    await pool.close()

    assert all(b.launch.process.returncode is not None for b in source.started)
    assert pool.counts() == {}
    pool.replenish(KEY)
    assert pool.take(KEY) is None
    assert len(source.started) == 2


def test_a_pool_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="-1 blanks"):
        SandboxPool(ProcessBlanks(), size=-1)


@pytest.mark.parametrize(
    ("variables", "matches"),
    [
        ({"TABLE": "t", "PYTHONPATH": "/var/task/lib"}, True),
        ({"LD_PRELOAD": "/var/task/libx.so"}, False),
        ({"LC_ALL": "C"}, False),
        ({"MALLOC_ARENA_MAX": "2"}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.check=3"}, False),
        ({"LANGUAGE": "fr"}, False),
    ],
)
def test_only_functions_whose_startup_variables_are_the_platforms_use_a_blank(
    variables: dict[str, str], matches: bool
) -> None:
    platform = {"LANG": "en_US.UTF-8", "TZ": ":UTC", "LD_LIBRARY_PATH": "/var/lang/lib"}

    assert startup_matches(platform, {**variables, **platform}) is matches
