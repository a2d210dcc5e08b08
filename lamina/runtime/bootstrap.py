"""Lamina's Python runtime: the first process of every Python sandbox.

The worker starts it as ``pythonX.Y -I -S /var/runtime/bootstrap.py`` with cwd ``/var/task``.
It imports the function's handler (the Init phase), then serves invokes one at a time through
the Lambda Runtime API, spoken as HTTP/1.1 over the Unix socket named by
``LAMINA_RUNTIME_SOCKET``: fetch the next event, call the handler, post its result or error.

Code that speaks the Runtime API over TCP finds it where Lambda serves it,
``AWS_LAMBDA_RUNTIME_API`` (127.0.0.1:9001 on the sandbox's own loopback). Under bubblewrap
the worker listens there itself. Where it cannot (gVisor's network stack is its own), it sets
``LAMINA_RUNTIME_RELAY`` and, before anything else, a forked child of this process relays that
address to the Unix socket. Started as ``bootstrap.py --exec PROGRAM``, it opens the relay if
asked and then becomes PROGRAM: that is how a custom runtime's ``/var/task/bootstrap``
starts.

What a function can observe matches AWS's Python runtime: sys.path, the context object, the
log format, how results are encoded, and the error documents and log lines of failures.

Only the standard library is used, and only modules that any function pays for anyway are
imported, because their import time is part of every cold start. For that reason the HTTP
client is a small one over a plain socket: http.client would pull in email, calendar, random
and more, which costs milliseconds and would shadow function modules of those names, which
AWS's runtime leaves free.
"""

from __future__ import annotations

import codecs
import errno
import importlib
import io
import json
import logging
import os
import selectors
import signal
import site
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType

_API = "/2018-06-01/runtime"
_DEFAULT_SOCKET = "/var/run/lamina/runtime.sock"
_RELAY_ADDRESS = "127.0.0.1:9001"
# Set, to 1, by the backends whose sandboxes need the relay.
_RELAY_VAR = "LAMINA_RUNTIME_RELAY"
# The worker accepts 32 connections of a sandbox at a time; the relay keeps one free for the
# runtime's own and waits for a pair to close before it accepts more.
_RELAY_PAIRS = 31
# A connect to the worker that waits longer is given up: the relay never blocks for long.
_RELAY_CONNECT_S = 2.0
_TRACE_ID_VAR = "_X_AMZN_TRACE_ID"
_TELEMETRY_FD_VAR = "_LAMBDA_TELEMETRY_LOG_FD"
# The frame types of text records, by logging level, on the telemetry pipe.
_TEXT_FRAME_TYPES = {
    0: b"\xa5\x5a\x00\x03",
    10: b"\xa5\x5a\x00\x0b",
    20: b"\xa5\x5a\x00\x0f",
    30: b"\xa5\x5a\x00\x13",
    40: b"\xa5\x5a\x00\x17",
    50: b"\xa5\x5a\x00\x1b",
}
_LAYER_DIR = "/opt/python"
_USER_AGENT = "lamina-python/%d.%d.%d" % sys.version_info[:3]
_LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_NO_BREAK_SPACE = "\u00a0"
_INFINITY = float("inf")
# AWS's runtime client logs this before a failed init's error, in these words.
_UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function "
    "code. However, in rare cases, a Lambda runtime update can cause unexpected function "
    "behavior. For functions using managed runtimes, runtime updates can be triggered by a "
    "function change, or can be applied automatically. To determine if the runtime has been "
    "updated, check the runtime version in the INIT_START log entry. If this error correlates "
    "with a change in the runtime version, you may be able to mitigate this error by "
    "temporarily rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)

# The invoke in progress, for the request id that every log record carries.
_request_id: str | None = None
# The telemetry pipe, when the platform offers one.
_telemetry: io.RawIOBase | None = None
_tenant_id: str | None = None


class RuntimeFault(Exception):
    """A failure reported under one of AWS's ``Runtime.*`` error types, without a traceback."""

    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    MARSHAL_ERROR = "Runtime.MarshalError"
    CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, error_type: str, message: str, stack: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack = stack


class RuntimeApiError(Exception):
    """The Runtime API is unreachable or answered outside the protocol: the runtime exits."""


# --- Handler -------------------------------------------------------------------------------


def load_handler(spec: str) -> Callable[..., object]:
    """Import the function's module and return its handler.

    A handler that cannot be found raises a `RuntimeFault`; any other exception raised by the
    module's code propagates. Either one is an init error, as in AWS's runtime client.
    """
    return _find_handler(spec)


def _find_handler(spec: str) -> Callable[..., object]:
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as error:
        message = f"Bad handler '{spec}': {error}"
        raise RuntimeFault(RuntimeFault.MALFORMED_HANDLER_NAME, message) from None

    module = _import_module(module_name)

    try:
        return getattr(module, function_name)
    except AttributeError:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise RuntimeFault(RuntimeFault.HANDLER_NOT_FOUND, message) from None


def _import_module(name: str) -> object:
    if name.split(".")[0] in sys.builtin_module_names:
        message = f"Cannot use built-in module {name} as a handler module"
        raise RuntimeFault(RuntimeFault.BUILT_IN_MODULE_CONFLICT, message)

    try:
        # importlib rather than __import__: its frame opens the stack trace of init errors,
        # as it does on AWS.
        return importlib.import_module(name.replace("/", "."))
    except ImportError as error:
        message = f"Unable to import module '{name}': {error}"
        raise RuntimeFault(RuntimeFault.IMPORT_MODULE_ERROR, message) from None
    except SyntaxError as error:
        stack = [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}']
        message = f"Syntax error in module '{name}': {error}"
        raise RuntimeFault(RuntimeFault.USER_CODE_SYNTAX_ERROR, message, stack) from None


# --- Context -------------------------------------------------------------------------------


class LambdaContext:
    """The handler's ``context`` argument, attribute for attribute like AWS's."""

    def __init__(
        self,
        invoke_id: str,
        client_context: dict | None,
        cognito_identity: dict | None,
        epoch_deadline_time_in_ms: int,
        invoked_function_arn: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.aws_request_id = invoke_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self.client_context = _client_context(client_context)
        self.identity = _cognito_identity(cognito_identity)
        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self) -> int:
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg: object) -> None:
        write_record(str(msg))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(["
            f"aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id}"
            "])"
        )


class _Fields:
    """An object of named fields, printed the way AWS's runtime prints the context's parts."""

    # In AWS's order, which repr shows; set from a dict whose missing keys read as None.
    FIELDS: tuple[str, ...] = ()
    __slots__ = ()

    def __init__(self, values: dict) -> None:
        for name in self.FIELDS:
            setattr(self, name, values.get(name))

    def __repr__(self) -> str:
        fields = ",".join(f"{name}={getattr(self, name)}" for name in self.FIELDS)
        return f"{type(self).__name__}([{fields}])"


class CognitoIdentity(_Fields):
    FIELDS = ("cognito_identity_id", "cognito_identity_pool_id")
    __slots__ = FIELDS


class Client(_Fields):
    FIELDS = (
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    )
    __slots__ = FIELDS


class ClientContext(_Fields):
    FIELDS = ("custom", "env", "client")
    __slots__ = FIELDS
    client: object


def _client_context(values: dict | None) -> ClientContext | None:
    if values is None:
        return None

    context = ClientContext(values)
    if context.client is not None:
        context.client = Client(context.client)  # type: ignore[arg-type]
    return context


def _cognito_identity(values: dict | None) -> CognitoIdentity:
    # The identity object always exists; its fields stay None without the header.
    values = {} if values is None else values
    return CognitoIdentity(
        {
            "cognito_identity_id": values.get("cognitoIdentityId"),
            "cognito_identity_pool_id": values.get("cognitoIdentityPoolId"),
        }
    )


# --- Events and results --------------------------------------------------------------------


def parse_event(body: bytes, content_type: str | None) -> object:
    """Decode an event the way AWS's runtime does: JSON, unless another type is announced."""
    if content_type is not None and content_type.split(";")[0].strip() != "application/json":
        return body

    try:
        # utf-8-sig drops a leading byte order mark, which AWS's JSON decoder also skips.
        return json.loads(body.decode("utf-8-sig"))
    except (ValueError, RecursionError) as error:
        message = f"Unable to unmarshal input: {error}"
        raise RuntimeFault(RuntimeFault.UNMARSHAL_ERROR, message) from None


def encode_result(result: object) -> tuple[bytes, str]:
    """Serialize a handler's result into the body and content type of its response."""
    if isinstance(result, bytes):
        return result, "application/unknown"

    try:
        return WIRE_JSON.encode(result).encode("utf-8"), "application/json"
    except Exception as error:
        # The result is user data: whatever its own methods raise is a marshal error.
        message = f"Unable to marshal response: {error}"
        raise RuntimeFault(RuntimeFault.MARSHAL_ERROR, message) from None


class JsonWriter:
    """JSON as AWS's runtime writes results and error documents.

    Decimals keep their exact digits (``1.10`` stays ``1.10``, NaN becomes ``NaN``) and bytes
    inside a value are written as UTF-8 text. The C encoder handles the common case; a value
    holding a Decimal takes the pure-Python encoder, the only one that lets a number be
    written from its own text.
    """

    def __init__(self, ensure_ascii: bool) -> None:
        self._ensure_ascii = ensure_ascii
        self._fast = json.JSONEncoder(ensure_ascii=ensure_ascii, default=_default_without_decimals)

    def encode(self, value: object) -> str:
        try:
            return self._fast.encode(value)
        except _DecimalFound:
            return "".join(self._decimal_iterencode()(value, 0))

    def _decimal_iterencode(self) -> Callable[[object, int], Iterator[str]]:
        encoder = json.encoder
        quote = (
            encoder.encode_basestring_ascii if self._ensure_ascii else encoder.encode_basestring
        )
        # A fresh markers dict per call, as json's own encoder does for circular references.
        return encoder._make_iterencode(  # type: ignore[attr-defined,no-any-return]
            {}, _default_with_decimals, quote, None, _float_text, ": ", ", ", False, False, True
        )


def escapes_non_ascii(execution_env: str) -> bool:
    """AWS's runtimes up to python3.11 escape non-ASCII characters; later ones write UTF-8."""
    prefix = "AWS_Lambda_python3."
    minor = execution_env[len(prefix) :]
    if execution_env.startswith(prefix) and minor.isdigit():
        return int(minor) < 12
    return True


class _DecimalFound(Exception):
    """Raised by the C encoder's hook: the value holds a Decimal."""


class _DecimalNumber(float):
    """A Decimal on its way through json's encoder, which writes it from ``text``."""

    text: str


def _is_decimal(value: object) -> bool:
    # Looked up, never imported: no value can be a Decimal unless the function imported decimal.
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(value, decimal.Decimal)


def _default_without_decimals(value: object) -> object:
    if _is_decimal(value):
        raise _DecimalFound
    return _default(value)


def _default_with_decimals(value: object) -> object:
    if not _is_decimal(value):
        return _default(value)

    if value.is_nan():  # type: ignore[attr-defined]
        return float("nan")
    number = _DecimalNumber()
    number.text = str(value)
    return number


def _default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _float_text(value: float) -> str:
    if isinstance(value, _DecimalNumber):
        return value.text
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


WIRE_JSON = JsonWriter(escapes_non_ascii(os.environ.get("AWS_EXECUTION_ENV", "")))


# --- Errors --------------------------------------------------------------------------------


def error_document(
    message: str, error_type: str, stack: list[str] | None, request_id: str | None = None
) -> dict:
    """The JSON body AWS's runtime posts for a failed invoke or a failed init."""
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": stack or [],
    }


def exception_document(error: BaseException, request_id: str | None = None) -> dict:
    stack = _user_stack(error.__traceback__)
    return error_document(str(error), type(error).__name__, stack, request_id)


def _user_stack(tb: TracebackType | None) -> list[str]:
    """Format a traceback like AWS: the runtime's frames that lead into user code are left out.

    The frames are rebuilt without columns, so Python 3.11+ prints no carets, as on AWS.
    """
    frames = [
        traceback.FrameSummary(frame.filename, frame.lineno, frame.name, line=frame.line)
        for frame in traceback.extract_tb(tb)
    ]
    first = next((i for i, frame in enumerate(frames) if "/bootstrap.py" not in frame.filename), 0)
    return traceback.format_list(frames[first:])


def log_error(document: dict) -> None:
    """Log an error as AWS's runtime does: ``[ERROR] Type: message``, then the traceback."""
    headline = "[ERROR]"
    if document["errorType"]:
        headline += " " + document["errorType"]
    if document["errorMessage"]:
        headline += (":" if document["errorType"] else "") + " " + document["errorMessage"]

    lines = [headline, "Traceback (most recent call last):"]
    for entry in document["stackTrace"]:
        lines.extend(_indent_with_no_break_spaces(line) for line in entry.splitlines() or [""])

    write_record("\n".join(lines), logging.ERROR)


def _indent_with_no_break_spaces(line: str) -> str:
    # Log viewers collapse leading spaces; AWS keeps the traceback's indentation this way.
    text = line.lstrip(" ")
    return _NO_BREAK_SPACE * (len(line) - len(text)) + text


# --- Output and logging --------------------------------------------------------------------


def write_record(text: str, level: int = logging.NOTSET) -> None:
    """Write one log record (a logging call, an error, ``context.log``) as one log event.

    Where the platform offers a telemetry pipe, the record is one frame on it and keeps its
    line breaks, as AWS's runtime client writes it. Otherwise it is one line of stdout, its own
    line breaks written as carriage returns, as AWS's runtime does on a plain stream.
    """
    if text.endswith("\n"):
        text = text[:-1]
    if _telemetry is None:
        sys.stdout.write(text.replace("\n", "\r") + "\n")
        return

    data = text.encode("utf-8")
    frame_type = _TEXT_FRAME_TYPES.get(level, _TEXT_FRAME_TYPES[logging.NOTSET])
    micros = time.time_ns() // 1000
    header = frame_type + len(data).to_bytes(4, "big") + micros.to_bytes(8, "big")
    _telemetry.write(header + data)


def set_up_telemetry() -> None:
    """Take the telemetry pipe Lambda names in _LAMBDA_TELEMETRY_LOG_FD, out of sight of the
    function's own processes, as AWS's runtime client does."""
    global _telemetry
    fd = os.environ.pop(_TELEMETRY_FD_VAR, None)
    if fd is not None and fd.isdigit():
        _telemetry = os.fdopen(int(fd), "wb", 0)


class _Unbuffered:
    """Flushes every write, so output leaves the sandbox as it is written, as on AWS."""

    def __init__(self, stream: io.TextIOWrapper) -> None:
        self.stream = stream

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def writelines(self, lines: list[str]) -> None:
        self.stream.writelines(lines)
        self.stream.flush()


def set_up_output() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        # Lambda's locale is UTF-8, whatever locale data the sandbox's root holds.
        if codecs.lookup(stream.encoding).name != "utf-8":
            stream.reconfigure(encoding="utf-8")
        setattr(sys, name, _Unbuffered(stream))


def flush_output() -> None:
    """Push out everything the function wrote, so the worker files it under this invoke."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        # Not contextlib.suppress: importing contextlib would add to every cold start.
        try:  # noqa: SIM105
            stream.flush()  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass  # the function replaced or closed the stream


class _RecordHandler(logging.Handler):
    # No error handling here, as on AWS: a bad format argument raises in the caller.
    def emit(self, record: logging.LogRecord) -> None:
        write_record(self.format(record), record.levelno)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id or ""
        record.tenant_id = _tenant_id
        return True


def set_up_logging() -> None:
    """Give the root logger AWS's text format; AWS_LAMBDA_LOG_LEVEL sets its level.

    AWS's JSON format (AWS_LAMBDA_LOG_FORMAT=JSON) is not offered yet: text is all it writes.
    """
    # Set on the class, as AWS does, so the function's own formatters print UTC too.
    logging.Formatter.converter = time.gmtime

    handler = _RecordHandler()
    handler.setFormatter(logging.Formatter(_LOG_FORMAT, _LOG_DATE_FORMAT))
    handler.addFilter(_RequestIdFilter())

    root = logging.getLogger()
    level = _log_level(os.environ.get("AWS_LAMBDA_LOG_LEVEL"))
    if isinstance(logging.getLevelName(level), int):
        root.setLevel(level)
    root.addHandler(handler)


def _log_level(value: str | None) -> str:
    # Only an exact "TRACE" maps to DEBUG; other spellings are upper-cased, as on AWS.
    if value is None:
        return ""
    return ("DEBUG" if value == "TRACE" else value).upper()


# --- Process environment -------------------------------------------------------------------


def set_up_sys_path() -> None:
    """Lay out sys.path as Lambda does: the function's code, its layers, then the runtime.

    ``-I`` keeps this script's directory out of sys.path, so nothing here shadows user modules.
    """
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    runtime_dir = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
    user_path = os.environ.get("PYTHONPATH")

    if user_path is None:
        site_dirs = [task_root, _layer_site_packages(), _LAYER_DIR]
        sys.path[:0] = [*site_dirs, runtime_dir]
        # The function's child processes find the runtime's modules, as on Lambda.
        os.environ["PYTHONPATH"] = runtime_dir
    else:
        # -I made the interpreter skip PYTHONPATH; honour it as a plain interpreter would.
        site_dirs = [task_root]
        sys.path[:0] = [task_root, runtime_dir, *filter(None, user_path.split(os.pathsep))]

    # Their .pth files take effect as in site-packages (this appends the missing layer dirs
    # a second time at the end, exactly as Lambda's sys.path shows them).
    for directory in site_dirs:
        site.addsitedir(directory)

    # -S skipped site's setup, but on Lambda exit(), quit() and help() exist.
    site.setquit()
    site.setcopyright()
    site.sethelper()


def _layer_site_packages() -> str:
    return f"{_LAYER_DIR}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def _exit_quietly(signum: int, frame: object) -> None:
    flush_output()
    os._exit(0)


# --- Runtime API ---------------------------------------------------------------------------


class Invocation:
    """One event as ``GET invocation/next`` hands it over."""

    def __init__(self, headers: dict[str, str], body: bytes) -> None:
        self.body = body
        self.request_id = headers.get("lambda-runtime-aws-request-id", "")
        self.deadline_ms = int(headers.get("lambda-runtime-deadline-ms") or 0)
        self.invoked_function_arn = headers.get("lambda-runtime-invoked-function-arn")
        # Empty headers count as absent, as in AWS's runtime client.
        self.trace_id = headers.get("lambda-runtime-trace-id") or None
        self.client_context = headers.get("lambda-runtime-client-context") or None
        self.cognito_identity = headers.get("lambda-runtime-cognito-identity") or None
        self.tenant_id = headers.get("lambda-runtime-aws-tenant-id") or None
        self.content_type = headers.get("content-type") or None


class RuntimeApiClient:
    """The Lambda Runtime API over one keep-alive HTTP/1.1 connection.

    ``address`` is a Unix socket path, or ``host:port`` as in ``AWS_LAMBDA_RUNTIME_API``.
    """

    def __init__(self, address: str) -> None:
        self._socket_path = address
        self._connection: _Connection | None = None

    def next_invocation(self) -> Invocation:
        status, headers, body = self._request("GET", f"{_API}/invocation/next")
        if status != 200:
            raise RuntimeApiError(f"GET invocation/next answered {status}")
        return Invocation(headers, body)

    def post_response(self, request_id: str, body: bytes, content_type: str) -> None:
        path = f"{_API}/invocation/{request_id}/response"
        self._post(path, body, {"Content-Type": content_type})

    def post_error(self, request_id: str, document: dict) -> None:
        self._post_error(f"{_API}/invocation/{request_id}/error", document)

    def post_init_error(self, document: dict) -> None:
        self._post_error(f"{_API}/init/error", document)

    def _post_error(self, path: str, document: dict) -> None:
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": document["errorType"],
        }
        self._post(path, WIRE_JSON.encode(document).encode("utf-8"), headers)

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        status, _, _ = self._request("POST", path, body, headers)
        # 413: the worker turns a too large result into its error; the sandbox stays usable.
        if not (200 <= status < 300 or status == 413):
            raise RuntimeApiError(f"POST {path} answered {status}")

    def _request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One exchange; a dropped connection is reopened once before the runtime gives up."""
        failure: OSError | None = None
        for _ in range(2):
            try:
                connection = self._connection or _Connection(self._socket_path)
                self._connection = connection
                response = connection.exchange(method, path, body, headers or {})
            except OSError as error:
                self._disconnect()
                failure = error
                continue

            if not connection.reusable:
                self._disconnect()
            return response
        raise RuntimeApiError(f"{method} {path} failed: {failure}")

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class _Connection:
    """One HTTP/1.1 client connection to a Unix socket or a TCP address."""

    def __init__(self, address: str) -> None:
        if address.startswith("/"):
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: object = address
        else:
            host, _, port = address.rpartition(":")
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            target = (host, int(port))
        try:
            self._socket.connect(target)
        except OSError:
            self._socket.close()
            raise
        self._reader = self._socket.makefile("rb")
        self.reusable = True

    def exchange(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost", f"User-Agent: {_USER_AGENT}"]
        if method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        self._socket.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"))
        try:
            self._socket.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            # A server may answer before reading the whole body (413 on the length alone);
            # its answer, if it sent one, is still there to read.
            self.reusable = False

        try:
            return self._read_response()
        except ValueError as error:
            raise ConnectionError(f"malformed response from the Runtime API: {error}") from None

    def close(self) -> None:
        self._reader.close()
        self._socket.close()

    def _read_response(self) -> tuple[int, dict[str, str], bytes]:
        status_line = self._readline()
        version, status = status_line.split()[:2]
        if not version.startswith(b"HTTP/"):
            raise ValueError(f"status line {status_line!r}")

        headers = self._read_headers()
        body = self._read_body(int(status), headers)

        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        return int(status), headers, body

    def _read_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        while True:
            line = self._readline()
            if not line.strip():
                return headers
            name, _, value = line.decode("utf-8", "replace").partition(":")
            headers[name.strip().lower()] = value.strip()

    def _read_body(self, status: int, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        if "content-length" in headers:
            return self._read_exactly(int(headers["content-length"]))
        if status < 200 or status in (204, 304):
            return b""

        # Neither a length nor chunks: the body runs to the end of the connection.
        self.reusable = False
        return self._reader.read()

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self._readline().split(b";")[0], 16)
            if size == 0:
                break
            chunks.append(self._read_exactly(size + 2)[:-2])

        self._read_headers()  # trailers
        return b"".join(chunks)

    def _read_exactly(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) < size:
            raise ConnectionResetError("the Runtime API closed the connection mid-body")
        return data

    def _readline(self) -> bytes:
        line = self._reader.readline()
        if not line:
            raise ConnectionResetError("the Runtime API closed the connection")
        return line


# --- Runtime API relay ---------------------------------------------------------------------


def start_relay(socket_path: str, runtime_only: socket.socket | None = None) -> None:
    """Serve AWS_LAMBDA_RUNTIME_API on the sandbox's loopback from a forked child.

    The listener is open before this returns, so the runtime never races the relay. The
    child dies with the sandbox: its pid namespace ends when the runtime does. The child
    closes its copy of `runtime_only`, which belongs to the runtime alone.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Where AWS_LAMBDA_RUNTIME_API says: 127.0.0.1:9001 in a sandbox of its own loopback.
    host, _, port = os.environ.get("AWS_LAMBDA_RUNTIME_API", _RELAY_ADDRESS).rpartition(":")
    listener.bind((host, int(port)))
    listener.listen(64)
    if os.fork() == 0:
        try:
            if runtime_only is not None:
                runtime_only.close()
            _relay_forever(listener, socket_path)
        finally:
            os._exit(0)
    listener.close()


def _relay_forever(listener: socket.socket, socket_path: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    peers: dict[socket.socket, socket.socket] = {}
    while True:
        for key, _ in selector.select():
            side = key.fileobj
            if side is listener:
                _relay_accept(listener, socket_path, selector, peers)
            # Both ends of a pair may be ready at once; the first one closes the pair.
            elif side in peers:
                _relay_copy(side, selector, peers, listener)  # type: ignore[arg-type]


def _relay_accept(
    listener: socket.socket,
    socket_path: str,
    selector: selectors.BaseSelector,
    peers: dict[socket.socket, socket.socket],
) -> None:
    try:
        client, _ = listener.accept()
    except OSError as error:
        if error.errno in (errno.EMFILE, errno.ENFILE):
            # No descriptor left: wait for a pair to close rather than spin on the listener.
            selector.unregister(listener)
        return  # else the client gave up already
    try:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        client.close()
        return
    try:
        upstream.settimeout(_RELAY_CONNECT_S)
        upstream.connect(socket_path)
        upstream.settimeout(None)
    except OSError:
        client.close()
        upstream.close()
        return
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peers[client], peers[upstream] = upstream, client
    selector.register(client, selectors.EVENT_READ)
    selector.register(upstream, selectors.EVENT_READ)
    if len(peers) >= 2 * _RELAY_PAIRS:
        selector.unregister(listener)


def _relay_copy(
    side: socket.socket,
    selector: selectors.BaseSelector,
    peers: dict[socket.socket, socket.socket],
    listener: socket.socket,
) -> None:
    other = peers[side]
    try:
        data = side.recv(262144)
        if data:
            other.sendall(data)
            return
    except OSError:
        pass
    for end in (side, other):
        selector.unregister(end)
        peers.pop(end, None)
        end.close()
    if listener not in selector.get_map():
        selector.register(listener, selectors.EVENT_READ)


def exec_custom(argv: list[str], relay: bool) -> None:
    """Open the relay if asked, then become the custom runtime's bootstrap."""
    socket_path = os.environ.pop("LAMINA_RUNTIME_SOCKET", _DEFAULT_SOCKET)
    if relay:
        start_relay(socket_path)
    try:
        os.execv(argv[0], argv)
    except OSError as error:
        sys.stderr.write(f"fork/exec {argv[0]}: {error.strerror.lower()}\n")
        sys.exit(127)


# --- Blank sandboxes -----------------------------------------------------------------------


def start_blank(relay: bool) -> list[str]:
    """Open the relay (if asked) in a blank sandbox of the worker's pool, then wait for the
    function it is given.

    The worker starts a blank sandbox before any function is known, with the descriptor of a
    channel in ``LAMINA_ASSIGNMENT_FD``. The runtime says it is ready on that channel and
    reads its function's whole environment from it, which then replaces its own, exactly as
    if it had been started with it: what the process's start added to the environment it was
    given (bubblewrap's PWD, the interpreter's LC_CTYPE when it coerces the C locale) stays,
    as it would have been added to the function's. The resource limits it is given replace
    its own first, where its backend fixed them before the function was known. It returns
    the arguments to continue with. A channel closed without an assignment means the pool is
    drained: the runtime ends quietly.
    """
    global WIRE_JSON
    channel_fd = int(os.environ.pop("LAMINA_ASSIGNMENT_FD"))
    channel = socket.socket(fileno=channel_fd)
    # The relay's address and socket are the same in every sandbox: it opens beforehand.
    socket_path = os.environ.get("LAMINA_RUNTIME_SOCKET")
    if relay and socket_path is not None:
        start_relay(socket_path, channel)
    channel.sendall(b"ready\n")
    chunks = []
    while True:
        try:
            chunk = channel.recv(65536)
        except ConnectionResetError:
            chunk = b""  # the worker is gone: what it sent before was read already
        if not chunk:
            break
        chunks.append(chunk)
    channel.close()
    if not chunks:
        os._exit(0)
    if channel_fd == 0:
        _stdin_from_null()

    assignment = json.loads(b"".join(chunks))
    _lower_limits(assignment.get("limits", {}))
    given = set(assignment["started_with"])
    added = {name: value for name, value in os.environ.items() if name not in given}
    os.environ.clear()
    os.environ.update(assignment["environment"])
    os.environ.update(added)
    WIRE_JSON = JsonWriter(escapes_non_ascii(os.environ.get("AWS_EXECUTION_ENV", "")))
    return list(assignment["arguments"])


def _stdin_from_null() -> None:
    """Give the runtime the standard input a cold start has, once the channel that was its
    standard input (under gVisor) is closed."""
    null = os.open(os.devnull, os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)
    # A custom runtime's program inherits it, as it inherits a cold start's.
    os.set_inheritable(0, True)


def _lower_limits(limits: dict[str, int]) -> None:
    """Set each limit, soft and hard: lowering a hard limit needs no privilege, and the
    function, which has none, can never raise it again."""
    if not limits:
        return
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    # Imported for this alone: a function's own module of that name must not be shadowed.
    del sys.modules["resource"]


def _as_started() -> None:
    """Show the runtime's source as the program, as a cold start shows it, when the worker
    ran the bytecode it compiled beforehand."""
    if sys.argv[0].endswith(".pyc"):
        sys.argv[0] = sys.argv[0][:-1]
        sys.modules["__main__"].__file__ = sys.argv[0]


# --- Lifecycle -----------------------------------------------------------------------------


def initialize(api: RuntimeApiClient) -> Callable[..., object]:
    """The Init phase: import the handler; if that fails, report an init error and exit."""
    try:
        return load_handler(os.environ.get("_HANDLER", ""))
    except RuntimeFault as fault:
        document = error_document(fault.message, fault.error_type, fault.stack)
    except Exception as error:
        document = exception_document(error)

    logging.warning(_UNHANDLED_EXCEPTION_WARNING)
    log_error(document)
    flush_output()
    api.post_init_error(document)
    sys.exit(1)


def serve_invocation(api: RuntimeApiClient, handler: Callable[..., object]) -> None:
    """Fetch one event, run the handler on it and post the outcome."""
    invocation = api.next_invocation()
    _begin(invocation)

    try:
        context = _make_context(invocation)
        event = parse_event(invocation.body, invocation.content_type)
        body, content_type = encode_result(handler(event, context))
    except RuntimeFault as fault:
        document = error_document(
            fault.message, fault.error_type, fault.stack, invocation.request_id
        )
    except Exception as error:
        document = exception_document(error, invocation.request_id)
    else:
        flush_output()
        api.post_response(invocation.request_id, body, content_type)
        return

    log_error(document)
    flush_output()
    api.post_error(invocation.request_id, document)


def _begin(invocation: Invocation) -> None:
    global _request_id, _tenant_id
    _request_id, _tenant_id = invocation.request_id, invocation.tenant_id

    if invocation.trace_id is None:
        os.environ.pop(_TRACE_ID_VAR, None)
    else:
        os.environ[_TRACE_ID_VAR] = invocation.trace_id


def _make_context(invocation: Invocation) -> LambdaContext:
    return LambdaContext(
        invocation.request_id,
        _parse_header_json(invocation.client_context, "Client Context"),
        _parse_header_json(invocation.cognito_identity, "Cognito Identity"),
        invocation.deadline_ms,
        invocation.invoked_function_arn,
        invocation.tenant_id,
    )


def _parse_header_json(value: str | None, name: str) -> dict | None:
    if value is None:
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as error:
        message = f"Unable to parse {name} JSON: {error}"
        raise RuntimeFault(RuntimeFault.CONTEXT_UNMARSHAL_ERROR, message) from None


def main() -> None:
    _as_started()
    relay = os.environ.pop(_RELAY_VAR, "") == "1"
    if sys.argv[1:2] == ["--blank"]:
        sys.argv[1:] = start_blank(relay)
        relay = False  # open already
    if sys.argv[1:2] == ["--exec"]:
        exec_custom(sys.argv[2:], relay)

    # The socket is Lamina's plumbing, not part of the environment Lambda gives functions.
    socket_path = os.environ.pop("LAMINA_RUNTIME_SOCKET", None)
    if relay and socket_path is not None:
        start_relay(socket_path)
    # The Unix socket is the faster way to the same API: no TCP, and no relay.
    address = socket_path or os.environ.get("AWS_LAMBDA_RUNTIME_API", _DEFAULT_SOCKET)
    api = RuntimeApiClient(address)

    # Installed before the function's import, so the function may install its own.
    signal.signal(signal.SIGTERM, _exit_quietly)
    set_up_telemetry()
    set_up_output()
    set_up_logging()
    set_up_sys_path()

    try:
        handler = initialize(api)
        while True:
            serve_invocation(api, handler)
    except RuntimeApiError as error:
        sys.stderr.write(f"lamina runtime: {error}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
