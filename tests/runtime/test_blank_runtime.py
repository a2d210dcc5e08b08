"""Lamina's runtime started blank (``bootstrap.py --blank``), as a worker's pool starts it:
it waits on its assignment channel, then runs the function it is given exactly as if it had
been started with that function's environment. Under every Python from 3.8 to 3.13 found.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.test_bootstrap import BOOTSTRAP, WAIT_S, Output, Runtime, _interpreters

FUNCTION = """
import os, sys

def handler(event, context):
    return {
        "env": dict(os.environ),
        "argv": sys.argv,
        "function": context.function_name,
        "memory": context.memory_limit_in_mb,
        "path": sys.path[:1],
    }
"""


class BlankRuntime(Runtime):
    """A runtime started blank; `assign` gives it its function."""

    def start_blank(self) -> None:
        self.channel, runtime_end = socket.socketpair()
        self.started_with = {
            "LAMINA_RUNTIME_SOCKET": self.api.socket_path,
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/bin:/bin",
            "LAMINA_ASSIGNMENT_FD": str(runtime_end.fileno()),
        }
        self.process = subprocess.Popen(
            [self.python, "-I", "-S", str(BOOTSTRAP), "--blank"],
            cwd=self.task_root,
            env=self.started_with,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=[runtime_end.fileno()],
        )
        runtime_end.close()
        self.api.output = Output(self.process)
        self.channel.settimeout(WAIT_S)
        assert self.channel.recv(6) == b"ready\n"

    def assign(self, environment: dict[str, str]) -> None:
        document = {
            "environment": environment,
            "arguments": [],
            "started_with": list(self.started_with),
        }
        self.channel.sendall(json.dumps(document).encode())
        self.channel.shutdown(socket.SHUT_WR)


@pytest.fixture(params=list(_interpreters()))
def blank(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlankRuntime]:
    runtime = BlankRuntime(request.param, tmp_path)
    yield runtime
    runtime.channel.close()
    runtime.close()


def function_environment(runtime: Runtime) -> dict[str, str]:
    return {
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": str(runtime.task_root),
        "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
        "LAMINA_RUNTIME_SOCKET": runtime.api.socket_path,
        "AWS_LAMBDA_FUNCTION_NAME": "assigned",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "TABLE": "orders",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "PATH": "/usr/bin:/bin",
    }


def test_a_blank_runtime_serves_the_function_it_is_assigned_with_its_environment(
    blank: BlankRuntime,
) -> None:
    blank.write("app.py", FUNCTION)
    blank.start_blank()

    blank.assign(function_environment(blank))
    answer = blank.invoke({}).json()

    assert answer["function"] == "assigned"
    assert answer["memory"] == "256"
    assert answer["env"]["TABLE"] == "orders"
    assert answer["path"] == [str(blank.task_root)]
    assert answer["argv"] == [str(BOOTSTRAP)]
    # Lamina's plumbing is gone from what the function sees.
    assert "LAMINA_ASSIGNMENT_FD" not in answer["env"]
    assert "LAMINA_RUNTIME_SOCKET" not in answer["env"]


def test_a_blank_runtime_keeps_what_its_own_start_added_to_the_environment(
    blank: BlankRuntime,
) -> None:
    blank.write("app.py", FUNCTION)
    blank.start_blank()
    assert blank.process is not None
    # What the process's start added (here, as bubblewrap adds PWD) is not in `started_with`.
    blank.started_with.pop("PATH")

    blank.assign({**function_environment(blank), "PATH": "/usr/local/bin"})
    answer = blank.invoke({}).json()

    assert answer["env"]["PATH"] == "/usr/bin:/bin"


def test_a_blank_runtime_whose_channel_closes_unassigned_ends_quietly(
    blank: BlankRuntime,
) -> None:
    blank.start_blank()

    blank.channel.shutdown(socket.SHUT_WR)

    assert blank.wait() == 0
    assert blank.api.output is not None
    assert blank.api.output.drain() == ("", "")
    assert blank.api.next_requests == 0


@pytest.mark.parametrize("interpreter", list(_interpreters()))
def test_the_runtime_run_as_bytecode_shows_itself_as_its_source(
    interpreter: tuple[int, str], tmp_path: Path
) -> None:
    runtime = Runtime(interpreter, tmp_path)
    compiled = tmp_path / "bootstrap.pyc"
    subprocess.run(
        [runtime.python, "-I", "-S", "-c",
         "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2])",
         str(BOOTSTRAP), str(compiled)],
        check=True,
    )  # fmt: skip
    runtime.write("app.py", FUNCTION)
    try:
        runtime.process = subprocess.Popen(
            [runtime.python, "-I", "-S", str(compiled)],
            cwd=runtime.task_root,
            env={**function_environment(runtime), "AWS_LAMBDA_FUNCTION_NAME": "fn"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        runtime.api.output = Output(runtime.process)

        answer = runtime.invoke({}).json()
    finally:
        runtime.close()

    assert answer["argv"] == [str(tmp_path / "bootstrap.py")]
