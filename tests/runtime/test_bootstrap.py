"""Lamina's Python runtime (lamina/runtime/bootstrap.py), run the way a sandbox runs it.

Every test starts the bootstrap with ``-I -S`` under each Python from 3.8 to 3.13 found on the
machine, in front of a fake Runtime API on a Unix socket, and checks what it posts and logs
against what AWS's Python runtime posts and logs.
"""

from __future__ import annotations

import calendar
import json
import os
import queue
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from threading import Lock, Thread
from typing import Any

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[2] / "lamina" / "runtime" / "bootstrap.py"
PYENV_VERSIONS = Path("/root/.pyenv/versions")
API = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
WAIT_S = 20  # the longest any one step may take before the test fails
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
DROP = object()  # queued instead of an event: the fake drops the connection of a waiting GET


# --- Interpreters ----------------------------------------------------------------------------


def _interpreter(minor: int) -> str | None:
    version = f"3.{minor}"
    found = sorted(PYENV_VERSIONS.glob(f"{version}.*/bin/python{version}"))
    if found:
        return str(found[-1])
    if sys.version_info[:2] == (3, minor):
        return sys.executable
    return None


def _interpreters() -> Iterator[Any]:
    for minor in range(8, 14):
        path = _interpreter(minor)
        reason = f"python3.{minor} is neither under {PYENV_VERSIONS} nor running the tests"
        marks = [] if path else [pytest.mark.skip(reason=reason)]
        yield pytest.param((minor, path), id=f"py3.{minor}", marks=marks)


# --- The worker's side of the Runtime API ----------------------------------------------------


@dataclass
class Post:
    """One POST of the runtime, with what it had written to stdout and stderr before it."""

    path: str
    headers: dict[str, str]
    body: bytes
    stdout: str
    stderr: str

    @property
    def request_id(self) -> str:
        return self.path.split("/")[-2]

    def json(self) -> Any:
        return json.loads(self.body)


class Output:
    """The runtime's output pipes, read without blocking at the moment it posts.

    Whatever the runtime wrote before posting is in the pipes by then, as the worker relies on.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._fds = [process.stdout.fileno(), process.stderr.fileno()]  # type: ignore[union-attr]
        for fd in self._fds:
            os.set_blocking(fd, False)
        self._lock = Lock()

    def drain(self) -> tuple[str, str]:
        with self._lock:
            stdout, stderr = (self._read(fd).decode() for fd in self._fds)
        return stdout, stderr

    @staticmethod
    def _read(fd: int) -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


class FakeRuntimeApi(socketserver.ThreadingUnixStreamServer):
    """Hands out queued events on ``GET next`` and records every POST."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, socket_path: str) -> None:
        super().__init__(socket_path, _RuntimeApiHandler)
        self.socket_path = socket_path
        self.events: queue.Queue[Any] = queue.Queue()
        self.posts: queue.Queue[Post] = queue.Queue()
        self.response_statuses: queue.Queue[int] = queue.Queue()
        self.next_requests = 0
        self.output: Output | None = None
        self._closed = False
        # A short poll interval: shutdown() waits for the serving loop to look at its flag.
        Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def close(self) -> None:
        """Stop listening, then release a GET still waiting, whose connection then drops."""
        if self._closed:
            return
        self._closed = True
        self.shutdown()
        self.server_close()
        os.unlink(self.socket_path)
        self.events.put(DROP)


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeRuntimeApi

    def do_GET(self) -> None:
        assert self.path == f"{API}/invocation/next"
        self.server.next_requests += 1

        item = self.server.events.get()
        if item is DROP:
            self.close_connection = True
            return

        body, headers = item
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {name.lower(): value for name, value in self.headers.items()}
        assert self.server.output is not None
        self.server.posts.put(Post(self.path, headers, body, *self.server.output.drain()))

        status = 202
        if self.path.endswith("/response") and not self.server.response_statuses.empty():
            status = self.server.response_statuses.get()
        answer = b'{"status":"OK"}' if status == 202 else b'{"errorType":"RequestEntityTooLarge"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a Unix socket has no client address to log, and the tests need no access log


# --- One runtime process ---------------------------------------------------------------------


class Runtime:
    """The bootstrap in front of a fake Runtime API, with the function's code in a task root."""

    def __init__(self, interpreter: tuple[int, str], workdir: Path) -> None:
        self.minor, self.python = interpreter
        self.task_root = workdir / "task"
        self.task_root.mkdir()
        # AF_UNIX paths are limited to 108 bytes, too few for pytest's tmp_path.
        self._socket_dir = tempfile.mkdtemp(prefix="lamina-rt-")
        self.api = FakeRuntimeApi(os.path.join(self._socket_dir, "runtime.sock"))
        self.process: subprocess.Popen[bytes] | None = None

    def write(self, relative_path: str, source: str) -> Path:
        path = self.task_root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def start(
        self, handler: str = "app.handler", pass_fds: tuple[int, ...] = (), **env: str
    ) -> None:
        environment = {
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(self.task_root),
            "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "LAMINA_RUNTIME_SOCKET": self.api.socket_path,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python3.{self.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": "fn",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123abcd",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/bin:/bin",
            **env,
        }
        self.process = subprocess.Popen(
            [self.python, "-I", "-S", str(BOOTSTRAP)],
            cwd=self.task_root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
        )
        self.api.output = Output(self.process)

    def invoke(self, event: Any = None, headers: dict[str, str] | None = None) -> Post:
        """Queue one event and return what the runtime posts for it."""
        request_id = str(uuid.uuid4())
        body = event if isinstance(event, bytes) else json.dumps(event or {}).encode()
        all_headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30_000),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
            "Content-Type": "application/json",
            **(headers or {}),
        }
        self.api.events.put((body, all_headers))

        post = self.next_post()
        assert post.request_id == all_headers["Lambda-Runtime-Aws-Request-Id"]
        return post

    def next_post(self) -> Post:
        try:
            return self.api.posts.get(timeout=WAIT_S)
        except queue.Empty:
            assert self.process is not None and self.api.output is not None
            stdout, stderr = self.api.output.drain()
            raise AssertionError(
                f"no POST within {WAIT_S}s; exit code {self.process.poll()}, "
                f"stdout {stdout!r}, stderr {stderr!r}"
            ) from None

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait(timeout=WAIT_S)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=WAIT_S)
        if self.process is not None:
            self.process.stdout.close()  # type: ignore[union-attr]
            self.process.stderr.close()  # type: ignore[union-attr]
        self.api.close()
        shutil.rmtree(self._socket_dir, ignore_errors=True)


@pytest.fixture(params=list(_interpreters()))
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(request.param, tmp_path)
    yield runtime
    runtime.close()


def error_path(post: Post) -> str:
    return f"{API}/invocation/{post.request_id}/error"


# --- Results ---------------------------------------------------------------------------------


def test_a_result_is_posted_as_json_to_the_invocations_response(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return {"echo": event, "half": 0.5, "ok": True}
        """,
    )
    runtime.start()

    post = runtime.invoke({"n": 1})

    assert post.path.endswith("/response")
    assert post.headers["content-type"] == "application/json"
    assert post.body == b'{"echo": {"n": 1}, "half": 0.5, "ok": true}'


def test_non_ascii_text_round_trips_byte_exact_from_python312_and_is_escaped_before(
    runtime: Runtime,
) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return event
        """,
    )
    runtime.start()
    event = '{"name": "Zoë 漢字 🎉"}'.encode()

    post = runtime.invoke(event)

    if runtime.minor >= 12:
        assert post.body == event
    else:
        assert post.body == b'{"name": "Zo\\u00eb \\u6f22\\u5b57 \\ud83c\\udf89"}'


def test_a_handler_returning_none_answers_null(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return None
        """,
    )
    runtime.start()

    assert runtime.invoke().body == b"null"


def test_decimals_keep_their_exact_digits(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        from decimal import Decimal

        def handler(event, context):
            numbers = [Decimal("-0"), Decimal("1E+2"), 2, 0.5]
            return {"price": Decimal("1.10"), "nan": Decimal("NaN"), "list": numbers, "é": 1}
        """,
    )
    runtime.start()

    post = runtime.invoke()

    key = "é" if runtime.minor >= 12 else "\\u00e9"
    expected = f'{{"price": 1.10, "nan": NaN, "list": [-0, 1E+2, 2, 0.5], "{key}": 1}}'
    assert post.body == expected.encode()


def test_bytes_are_posted_untouched(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return b"\\x00\\xffraw"
        """,
    )
    runtime.start()

    post = runtime.invoke()

    assert post.body == b"\x00\xffraw"
    assert post.headers["content-type"] == "application/unknown"


def test_an_unserializable_result_is_a_marshal_error(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return {"tags": {"a"}}
        """,
    )
    runtime.start()

    post = runtime.invoke()

    message = "Unable to marshal response: Object of type set is not JSON serializable"
    assert post.path == error_path(post)
    assert post.headers["lambda-runtime-function-error-type"] == "Runtime.MarshalError"
    assert post.json() == {
        "errorMessage": message,
        "errorType": "Runtime.MarshalError",
        "requestId": post.request_id,
        "stackTrace": [],
    }
    assert post.stdout == (
        f"[ERROR] Runtime.MarshalError: {message}\rTraceback (most recent call last):\n"
    )


def test_an_event_that_is_not_json_is_an_unmarshal_error(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return event
        """,
    )
    runtime.start()

    post = runtime.invoke(b"not json")

    assert post.json()["errorType"] == "Runtime.UnmarshalError"
    assert post.json()["errorMessage"] == (
        "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)"
    )


def test_a_413_on_the_response_leaves_the_runtime_serving(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return event
        """,
    )
    runtime.start()
    runtime.api.response_statuses.put(413)

    too_large = runtime.invoke({"first": True})
    after = runtime.invoke({"second": True})

    assert too_large.path.endswith("/response")
    assert after.body == b'{"second": true}'


# --- Function errors -------------------------------------------------------------------------


def test_an_exception_posts_awss_error_document_and_logs_one_error_record(
    runtime: Runtime,
) -> None:
    app = runtime.write(
        "app.py",
        """\
        def fail(message):
            raise ValueError(message)


        def handler(event, context):
            return fail("boom")
        """,
    )
    runtime.start()

    post = runtime.invoke()

    stack = [
        f'  File "{app}", line 6, in handler\n    return fail("boom")\n',
        f'  File "{app}", line 2, in fail\n    raise ValueError(message)\n',
    ]
    document = {
        "errorMessage": "boom",
        "errorType": "ValueError",
        "requestId": post.request_id,
        "stackTrace": stack,
    }
    assert post.path == error_path(post)
    assert post.headers["lambda-runtime-function-error-type"] == "ValueError"
    assert post.body == json.dumps(document).encode()
    nbsp = "\u00a0"
    assert post.stdout == (
        "[ERROR] ValueError: boom\r"
        "Traceback (most recent call last):\r"
        f'{nbsp * 2}File "{app}", line 6, in handler\r'
        f'{nbsp * 4}return fail("boom")\r'
        f'{nbsp * 2}File "{app}", line 2, in fail\r'
        f"{nbsp * 4}raise ValueError(message)\n"
    )


HANDLER_FAULTS = [
    pytest.param(
        "missing.handler",
        {},
        "Runtime.ImportModuleError",
        "Unable to import module 'missing': No module named 'missing'",
        id="module-missing",
    ),
    pytest.param(
        "app.handler",
        {"app.py": "import not_installed\n"},
        "Runtime.ImportModuleError",
        "Unable to import module 'app': No module named 'not_installed'",
        id="dependency-missing",
    ),
    pytest.param(
        "app.nope",
        {"app.py": "def handler(event, context):\n    return 1\n"},
        "Runtime.HandlerNotFound",
        "Handler 'nope' missing on module 'app'",
        id="handler-missing",
    ),
    pytest.param(
        "nodot",
        {},
        "Runtime.MalformedHandlerName",
        "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)",
        id="malformed",
    ),
    pytest.param(
        "sys.handler",
        {},
        "Runtime.BuiltInModuleConflict",
        "Cannot use built-in module sys as a handler module",
        id="built-in",
    ),
]


WARNING_HEAD = "[WARNING]\t"
WARNING_TAIL = "\t\tLAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the "


@pytest.mark.parametrize(("handler", "files", "error_type", "message"), HANDLER_FAULTS)
def test_a_handler_that_cannot_be_loaded_is_an_init_error(
    runtime: Runtime, handler: str, files: dict[str, str], error_type: str, message: str
) -> None:
    for name, source in files.items():
        runtime.write(name, source)
    runtime.start(handler)

    post = runtime.next_post()

    assert post.path == f"{API}/init/error"
    assert post.headers["lambda-runtime-function-error-type"] == error_type
    assert post.json() == {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "",
        "stackTrace": [],
    }
    warning, error = post.stdout.split("\n", 1)
    assert warning.startswith(WARNING_HEAD) and WARNING_TAIL in warning
    assert error == f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):\n"
    assert runtime.wait() == 1
    assert runtime.api.next_requests == 0


def test_a_syntax_error_is_an_init_error_with_the_line_at_fault(runtime: Runtime) -> None:
    runtime.write("broken.py", "def handler(event, context):\n    return (\n")
    expected = _syntax_error(runtime, "broken")
    runtime.start("broken.handler")

    post = runtime.next_post()

    message, filename, lineno, text = expected
    assert post.path == f"{API}/init/error"
    assert post.json() == {
        "errorMessage": f"Syntax error in module 'broken': {message}",
        "errorType": "Runtime.UserCodeSyntaxError",
        "requestId": "",
        "stackTrace": [f'  File "{filename}" Line {lineno}\n    {text}'],
    }
    assert filename == str(runtime.task_root / "broken.py")


def _syntax_error(runtime: Runtime, module: str) -> list[Any]:
    """How this interpreter words the module's SyntaxError, which differs between versions."""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(runtime.task_root)!r})\n"
        "try:\n"
        f"    import {module}\n"
        "except SyntaxError as e:\n"
        "    print(json.dumps([str(e), e.filename, e.lineno, e.text]))\n"
    )
    result = subprocess.run(
        [runtime.python, "-I", "-S", "-c", code], capture_output=True, check=True, timeout=WAIT_S
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_an_exception_while_importing_posts_an_init_error_and_exits_1(runtime: Runtime) -> None:
    app = runtime.write("app.py", 'raise RuntimeError("no config")\n')
    runtime.start()

    post = runtime.next_post()

    document = post.json()
    assert post.path == f"{API}/init/error"
    assert post.headers["lambda-runtime-function-error-type"] == "RuntimeError"
    assert document["errorMessage"] == "no config"
    assert document["errorType"] == "RuntimeError"
    assert document["requestId"] == ""
    assert "importlib" in document["stackTrace"][0]
    assert "in import_module\n" in document["stackTrace"][0]
    assert document["stackTrace"][-1] == (
        f'  File "{app}", line 1, in <module>\n    raise RuntimeError("no config")\n'
    )
    assert post.stdout.split("\n", 1)[1].startswith("[ERROR] RuntimeError: no config\rTraceback")
    assert runtime.wait() == 1
    assert runtime.api.next_requests == 0


# --- Context and environment -----------------------------------------------------------------


CONTEXT_APP = """
import time

def handler(event, context):
    before = int(time.time() * 1000)
    remaining = context.get_remaining_time_in_millis()
    after = int(time.time() * 1000)
    client_context = context.client_context
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "tenant_id": context.tenant_id,
        "identity": [
            context.identity.cognito_identity_id,
            context.identity.cognito_identity_pool_id,
        ],
        "client_context": client_context and {
            "custom": client_context.custom,
            "env": client_context.env,
            "client": repr(client_context.client),
        },
        "remaining": [before, remaining, after],
    }
"""


def test_the_context_carries_the_invocation_and_the_function(runtime: Runtime) -> None:
    runtime.write("app.py", CONTEXT_APP)
    runtime.start()
    deadline = int(time.time() * 1000) + 30_000
    headers = {
        "Lambda-Runtime-Deadline-Ms": str(deadline),
        "Lambda-Runtime-Client-Context": json.dumps(
            {
                "client": {"installation_id": "install-1", "app_title": "App"},
                "custom": {"k": "v"},
                "env": {"platform": "test"},
            }
        ),
        "Lambda-Runtime-Cognito-Identity": json.dumps(
            {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
        ),
        "Lambda-Runtime-Aws-Tenant-Id": "tenant-a",
    }

    post = runtime.invoke(headers=headers)

    context = post.json()
    before, remaining, after = context.pop("remaining")
    assert deadline - after <= remaining <= deadline - before
    assert context == {
        "function_name": "fn",
        "function_version": "$LATEST",
        "invoked_function_arn": ARN,
        "memory_limit_in_mb": "128",
        "aws_request_id": post.request_id,
        "log_group_name": "/aws/lambda/fn",
        "log_stream_name": "2024/01/01/[$LATEST]0123abcd",
        "tenant_id": "tenant-a",
        "identity": ["id-1", "pool-1"],
        "client_context": {
            "custom": {"k": "v"},
            "env": {"platform": "test"},
            "client": "Client([installation_id=install-1,app_title=App,app_version_name=None,"
            "app_version_code=None,app_package_name=None])",
        },
    }


def test_without_optional_headers_the_context_has_empty_parts_and_no_time_left(
    runtime: Runtime,
) -> None:
    runtime.write("app.py", CONTEXT_APP)
    runtime.start()
    past = str(int(time.time() * 1000) - 1_000)

    context = runtime.invoke(headers={"Lambda-Runtime-Deadline-Ms": past}).json()

    assert context["remaining"][1] == 0
    assert context["identity"] == [None, None]
    assert context["client_context"] is None
    assert context["tenant_id"] is None


def test_a_client_context_that_is_not_json_is_a_context_unmarshal_error(
    runtime: Runtime,
) -> None:
    runtime.write("app.py", CONTEXT_APP)
    runtime.start()

    post = runtime.invoke(headers={"Lambda-Runtime-Client-Context": "{oops"})

    assert post.json()["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert post.json()["errorMessage"].startswith("Unable to parse Client Context JSON: ")


def test_the_trace_id_is_set_for_an_invoke_and_removed_when_absent(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        import os

        def handler(event, context):
            return os.environ.get("_X_AMZN_TRACE_ID")
        """,
    )
    runtime.start()
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

    traced = runtime.invoke(headers={"Lambda-Runtime-Trace-Id": trace})
    untraced = runtime.invoke()

    assert traced.json() == trace
    assert untraced.json() is None


def test_sys_path_puts_the_task_root_first_and_frees_stdlib_names_the_runtime_never_uses(
    runtime: Runtime,
) -> None:
    vendor = runtime.task_root / "vendor"
    vendor.mkdir()
    runtime.write("extra.pth", f"{vendor}\n")
    runtime.write(
        "email.py",
        """
        import builtins, os, sys

        def handler(event, context):
            return {
                "path": sys.path[:4],
                "pth": sys.path.count(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "vendor")),
                "pythonpath": os.environ["PYTHONPATH"],
                "socket_variable": "LAMINA_RUNTIME_SOCKET" in os.environ,
                "exit": callable(getattr(builtins, "exit", None)),
                "heavy": sorted({"http", "ssl", "decimal", "typing", "random"} & set(sys.modules)),
            }
        """,
    )
    runtime.start("email.handler")

    facts = runtime.invoke().json()

    assert facts == {
        "path": [
            str(runtime.task_root),
            f"/opt/python/lib/python3.{runtime.minor}/site-packages",
            "/opt/python",
            str(BOOTSTRAP.parent),
        ],
        "pth": 1,
        "pythonpath": str(BOOTSTRAP.parent),
        "socket_variable": False,
        "exit": True,
        "heavy": [],
    }


def test_a_pythonpath_set_by_the_function_follows_the_task_root(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        import sys

        def handler(event, context):
            return sys.path[:3]
        """,
    )
    runtime.start(PYTHONPATH="/extra")

    assert runtime.invoke().json() == [str(runtime.task_root), str(BOOTSTRAP.parent), "/extra"]


def test_a_handler_in_a_subdirectory_is_named_with_slashes(runtime: Runtime) -> None:
    runtime.write(
        "pkg/sub/mod.py",
        """
        def handler(event, context):
            return __name__
        """,
    )
    runtime.start("pkg/sub/mod.handler")

    assert runtime.invoke().json() == "pkg.sub.mod"


# --- Logs ------------------------------------------------------------------------------------


def test_log_records_use_awss_format_in_utc_with_the_request_id(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        import logging

        logging.getLogger().warning("loaded")
        logger = logging.getLogger("app")

        def handler(event, context):
            logger.info("hidden at the default level")
            logger.warning("hello %s", "world")
            try:
                1 / 0
            except ZeroDivisionError:
                logger.exception("failed")
            context.log("via context")
            return None
        """,
    )
    # A zone nine hours east of UTC: records must still be stamped in UTC.
    runtime.start(TZ="XYZ-9")

    post = runtime.invoke()

    request_id = post.request_id
    loaded, hello, failed, via_context, rest = post.stdout.split("\n")
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\t\tloaded", loaded)
    assert re.fullmatch(rf"\[WARNING\]\t{TIMESTAMP}\t{request_id}\thello world", hello)
    assert re.fullmatch(rf"\[ERROR\]\t{TIMESTAMP}\t{request_id}\tfailed\rTraceback .*", failed)
    assert failed.endswith("\rZeroDivisionError: division by zero")
    assert via_context == "via context"
    assert rest == ""
    stamp = calendar.timegm(time.strptime(hello.split("\t")[1][:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(stamp - time.time()) < 600


def test_aws_lambda_log_level_sets_the_root_loggers_level(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        import logging

        def handler(event, context):
            logging.getLogger("app").debug("details")
        """,
    )
    runtime.start(AWS_LAMBDA_LOG_LEVEL="DEBUG")

    post = runtime.invoke()

    assert re.fullmatch(rf"\[DEBUG\]\t{TIMESTAMP}\t[-0-9a-f]+\tdetails\n", post.stdout)


def test_all_output_is_flushed_before_the_outcome_is_posted(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        import sys

        def handler(event, context):
            print("printed")
            sys.stderr.write("to stderr\\n")
            sys.__stdout__.write("buffered, no newline")
            if event.get("fail"):
                raise KeyError("k")
            return 1
        """,
    )
    runtime.start()

    succeeded = runtime.invoke()
    failed = runtime.invoke({"fail": True})

    assert succeeded.stdout == "printed\nbuffered, no newline"
    assert succeeded.stderr == "to stderr\n"
    assert failed.stdout.startswith("printed\nbuffered, no newline[ERROR] KeyError: 'k'\r")
    assert failed.stderr == "to stderr\n"


def read_frames(fd: int, count: int) -> list[tuple[int, int, str]]:
    """`count` telemetry frames: (type, timestamp in microseconds, message)."""
    data = b""
    frames = []
    while len(frames) < count:
        data += os.read(fd, 65536)
        while len(data) >= 16 and len(data) >= 16 + int.from_bytes(data[4:8], "big"):
            end = 16 + int.from_bytes(data[4:8], "big")
            frame_type, stamp = int.from_bytes(data[:4], "big"), int.from_bytes(data[8:16], "big")
            frames.append((frame_type, stamp, data[16:end].decode()))
            data = data[end:]
    return frames


def test_records_are_frames_on_the_telemetry_pipe_when_the_platform_offers_one(
    runtime: Runtime,
) -> None:
    runtime.write(
        "app.py",
        """
        import logging, os
        def handler(event, context):
            logging.getLogger().warning("two\\nlines")
            context.log("from context")
            print("printed")
            return "_LAMBDA_TELEMETRY_LOG_FD" in os.environ
        """,
    )
    read_end, write_end = os.pipe()
    runtime.start(pass_fds=(write_end,), _LAMBDA_TELEMETRY_LOG_FD=str(write_end))
    os.close(write_end)
    before = time.time_ns() // 1000

    post = runtime.invoke()

    warning, via_context = read_frames(read_end, 2)
    os.close(read_end)
    assert post.body == b"false"
    assert post.stdout == "printed\n"
    assert warning[0] == 0xA55A0013
    assert re.fullmatch(rf"\[WARNING\]\t\S+Z\t{post.request_id}\ttwo\nlines", warning[2])
    assert before <= warning[1] <= time.time_ns() // 1000
    assert (via_context[0], via_context[2]) == (0xA55A0003, "from context")


# --- Runtime API connection and shutdown -----------------------------------------------------


def test_a_dropped_connection_is_reopened_once(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return event
        """,
    )
    runtime.start()
    runtime.invoke()

    runtime.api.events.put(DROP)
    post = runtime.invoke({"after": "drop"})

    assert post.body == b'{"after": "drop"}'
    # Three GETs served the two events (one dropped, reopened once); once the POST is in, the
    # runtime may already be waiting in a fourth.
    assert runtime.api.next_requests in (3, 4)


def test_the_runtime_exits_1_when_the_runtime_api_is_gone(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return event
        """,
    )
    runtime.start()
    runtime.invoke()

    runtime.api.close()

    assert runtime.wait() == 1
    assert runtime.api.output is not None
    _, stderr = runtime.api.output.drain()
    assert stderr.startswith("lamina runtime: GET /2018-06-01/runtime/invocation/next failed")


def test_sigterm_ends_the_runtime_quietly(runtime: Runtime) -> None:
    runtime.write(
        "app.py",
        """
        def handler(event, context):
            return event
        """,
    )
    runtime.start()
    runtime.invoke()

    assert runtime.terminate() == 0
    assert runtime.api.output is not None
    assert runtime.api.output.drain() == ("", "")
