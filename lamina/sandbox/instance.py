"""One running sandbox on a worker: its process, its log, and the invocation it holds.

The runtime inside drives the exchange through the Runtime API: it asks for the next event,
then posts a response or an error. `Sandbox` is the worker's side of that exchange. It hands
over one invocation at a time, enforces the deadline by killing the whole sandbox, and turns
every way an invocation can end (answer, error, oversize answer, timeout, exit) into one
`Outcome` with the log lines Lambda would write for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from lamina.clock import Clock
from lamina.registry.model import FunctionConfig
from lamina.sandbox import bwrap
from lamina.sandbox import logs as loglines
from lamina.sandbox.backend import PROCESS, IsolationBackend
from lamina.sandbox.launch import Launch, ServeListener, spawn
from lamina.sandbox.output import LogSink, SandboxOutput
from lamina.sandbox.states import (
    INIT_TIMEOUT_S,
    RUNTIME_ALLOWED_FROM,
    Lifecycle,
    RuntimeState,
    SandboxState,
)

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
# How long a runtime told to shut down (SIGTERM) has before it is killed.
SHUTDOWN_GRACE_S = 0.5

_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGINT: "interrupt",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
}


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    trace_id: str = ""
    client_context: str | None = None
    cognito_identity: str | None = None
    deadline_ms: int = 0
    start_logged: bool = False
    done: asyncio.Future[tuple[str, bytes, str | None]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class Outcome:
    """How an invocation ended. `error_type` is None for a successful answer."""

    payload: bytes
    error_type: str | None
    sandbox_alive: bool
    log: bytes


@dataclass(frozen=True)
class InitOutcome:
    """How the init phase ended. A failed init carries either the error document the runtime
    posted to /runtime/init/error, or the reason Lamina saw (an exit, a timeout)."""

    ok: bool
    duration_ms: float
    error_type: str | None = None
    reason: str | None = None
    log: bytes = b""
    document: bytes | None = None


class EventNotDelivered(Exception):
    """The sandbox's runtime died before it took the event: the event may run elsewhere."""


class RuntimeApiError(Exception):
    """A Runtime API call the sandbox's state does not allow; carries the HTTP answer."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def exit_reason(returncode: int) -> str:
    """Lambda's words for how a runtime process ended (bubblewrap reports signals as 128+n)."""
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        with contextlib.suppress(ValueError):
            word = _SIGNAL_WORDS.get(signal.Signals(signum))
            if word:
                return f"Runtime exited with error: signal: {word}"
    if returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: exit status {returncode}"


class Sandbox:
    """The worker's handle on one sandbox process and its Runtime API state."""

    def __init__(
        self,
        sandbox_id: str,
        config: FunctionConfig,
        spec: bwrap.LaunchSpec,
        env: dict[str, str],
        clock: Clock,
        log_sink: LogSink | None = None,
        on_exit: Callable[[Sandbox], None] | None = None,
        *,
        backend: IsolationBackend,
        serve_listener: ServeListener,
    ) -> None:
        self.sandbox_id = sandbox_id
        self.backend = backend
        self._serve_listener = serve_listener
        self.config = config
        self.spec = spec
        self.env = env
        self.lifecycle = Lifecycle(sandbox_id)
        self._clock = clock
        self._log_sink = log_sink
        self._on_exit = on_exit
        self._process: asyncio.subprocess.Process | None = None
        self._exit_watch: asyncio.Task[None] | None = None
        self._output: SandboxOutput | None = None
        self._info_fd = -1
        self._runtime_pid_cache: int | None = None
        self._reaper_pid_cache: int | None = None
        self._network: asyncio.subprocess.Process | None = None
        self._peak_memory_mb = 0
        self._ready: asyncio.Future[None] | None = None
        self._init_error: tuple[str, bytes] | None = None
        # None in the queue tells a waiting `next` that the sandbox is gone.
        self._queue: asyncio.Queue[Invocation | None] = asyncio.Queue(maxsize=1)
        self._current: Invocation | None = None
        self._runtime_state = RuntimeState.STARTED
        self._init_log = b""
        self._init_duration_ms: float | None = None
        self.returncode: int | None = None
        self.created_at = clock.monotonic()

    @property
    def state(self) -> SandboxState:
        return self.lifecycle.state

    @property
    def socket_path(self) -> str:
        return str(self.spec.socket_dir / bwrap.SOCKET_NAME)

    # Start and init

    async def start(
        self, init_timeout: float = INIT_TIMEOUT_S, blank: Launch | None = None
    ) -> InitOutcome:
        """Start the runtime, or give a blank sandbox of the pool its function, and wait
        until the runtime asks for its first event (the init phase).

        Raises `AssignmentFailed`, before anything else, when the blank one is dead already.
        """
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        started = self._clock.monotonic()

        if blank is None:
            launch = await spawn(
                self.backend, self.sandbox_id, self.spec, self.env, self._serve_listener
            )
        else:
            arguments = bwrap.runtime_arguments(self.spec.interpreter)
            blank.assign(self.env, arguments, self.backend.assignment_limits(self.spec))
            launch = blank
        self._process = launch.process
        self._info_fd = launch.info_fd
        self._reaper_pid_cache = launch.reaper_pid
        self._network = launch.network
        self._output = SandboxOutput(launch.log_fd, launch.telemetry_fd, self._log_sink)
        self._exit_watch = asyncio.create_task(
            self._watch_exit(), name=f"sandbox-exit-{self.sandbox_id}"
        )

        await asyncio.wait([self._ready], timeout=init_timeout)
        return self._init_outcome(started, init_timeout)

    def _init_outcome(self, started: float, init_timeout: float) -> InitOutcome:
        duration_ms = (self._clock.monotonic() - started) * 1000
        assert self._ready is not None and self._output is not None
        if self._ready.done() and self._init_error is None and not self.lifecycle.dead:
            self._init_duration_ms = duration_ms
            # Found while the runtime lives: once it is dead, bubblewrap's reaper lives on
            # with its orphans until the cgroup is emptied.
            self._runtime_pid()
            self.lifecycle.to(SandboxState.IDLE)
            self._init_log = self._output.take()
            return InitOutcome(True, duration_ms)

        document = None
        if self._init_error is not None:
            error_type, document = self._init_error
            reason = f"Runtime failed to initialise: {error_type}"
        elif self.returncode is not None:
            error_type, reason = "Runtime.ExitError", exit_reason(self.returncode)
        else:
            error_type = "Sandbox.Timedout"
            reason = f"Init phase timed out after {init_timeout:.2f} seconds"
        self.kill()
        log.info("sandbox init failed id=%s error=%s", self.sandbox_id, reason)
        return InitOutcome(
            False, duration_ms, error_type, reason, self._output.take(), document or None
        )

    # Runtime API, called by the runtime inside

    async def next_invocation(self) -> Invocation:
        # The state stays as it was while the runtime waits, so a runtime whose long poll was
        # cut may ask again.
        self._runtime_to(RuntimeState.READY)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        invocation = await self._queue.get()
        if invocation is None:
            raise RuntimeApiError(410, "SandboxGone", "The sandbox is shutting down")
        self._current, self._runtime_state = invocation, RuntimeState.RUNNING
        self._log_start(invocation)
        return invocation

    def _log_start(self, invocation: Invocation) -> None:
        """Log START once, as the event reaches the runtime or, failing that, as it ends: an
        event the runtime never took may run in another sandbox, whose log holds its START."""
        if not invocation.start_logged:
            invocation.start_logged = True
            self._to_sink(loglines.start(invocation.request_id, self.config.version))

    def post_response(self, request_id: str, body: bytes) -> None:
        self._answer(request_id, RuntimeState.INVOCATION_RESPONSE, ("response", body, None))

    def post_oversize_response(self, request_id: str) -> None:
        # As in Lambda, a too large response still ends the invocation (with an error).
        self._answer(request_id, RuntimeState.INVOCATION_RESPONSE, ("oversize", b"", None))

    def post_error(self, request_id: str, error_type: str | None, body: bytes) -> None:
        self._answer(request_id, RuntimeState.INVOCATION_ERROR, ("error", body, error_type))

    def post_init_error(self, error_type: str | None, body: bytes) -> None:
        self._runtime_to(RuntimeState.INIT_ERROR)
        self._runtime_state = RuntimeState.INIT_ERROR
        self._init_error = (error_type or "Runtime.Unknown", body)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def _answer(
        self, request_id: str, wanted: RuntimeState, result: tuple[str, bytes, str | None]
    ) -> None:
        self._runtime_to(wanted)
        current = self._current
        # A wrong id leaves the invocation open: the runtime may still answer it rightly.
        if current is None or current.request_id != request_id or current.done.done():
            raise RuntimeApiError(400, "InvalidRequestID", "Invalid request ID")
        self._runtime_state = RuntimeState.RESPONSE_SENT
        current.done.set_result(result)

    def _runtime_to(self, wanted: RuntimeState) -> None:
        current = self._runtime_state
        if current not in RUNTIME_ALLOWED_FROM[wanted]:
            raise RuntimeApiError(
                403,
                "InvalidStateTransition",
                f"State transition from {current.value} to {wanted.value} failed for runtime. "
                "Error: State transition is not allowed",
            )

    # Invoke

    async def invoke(self, invocation: Invocation) -> Outcome:
        """Hand one event to the runtime and wait for its answer, at most the timeout.

        Raises `EventNotDelivered` when the runtime died before it took the event.
        """
        self.lifecycle.to(SandboxState.BUSY)
        assert self._output is not None
        self._output.take()
        started = self._clock.monotonic()
        invocation.deadline_ms = int((self._clock.time() + self.config.timeout) * 1000)
        self._queue.put_nowait(invocation)

        try:
            kind, body, error_type = await asyncio.wait_for(
                asyncio.shield(invocation.done), timeout=self.config.timeout
            )
        except TimeoutError:
            kind, body, error_type = "timeout", b"", None
        if kind == "undelivered":
            raise EventNotDelivered(self.sandbox_id)
        duration_ms = (self._clock.monotonic() - started) * 1000
        return self._finish(invocation, kind, body, error_type, duration_ms)

    def _finish(
        self,
        invocation: Invocation,
        kind: str,
        body: bytes,
        error_type: str | None,
        duration_ms: float,
    ) -> Outcome:
        request_id = invocation.request_id
        self._log_start(invocation)
        assert self._output is not None
        output = self._output.take()
        self._current = None
        status: str | None = None

        if kind == "response":
            payload, alive = body, True
        elif kind == "error":
            payload, alive = body, True
            error_type = error_type or "Unhandled"
        elif kind == "oversize":
            error_type, alive = "Function.ResponseSizeTooLarge", True
            payload = _error_doc(
                "Response payload size exceeded maximum allowed payload size "
                f"({MAX_RESPONSE_BYTES} bytes).",
                error_type,
            )
        elif kind == "timeout":
            self.kill()
            error_type, alive, status = "Sandbox.Timedout", False, "timeout"
            line = loglines.timed_out(request_id, self.config.timeout, self._clock.time())
            output += line.encode()
            self._to_sink(line)
            payload = _error_doc(
                f"RequestId: {request_id} Error: Task timed out after "
                f"{self.config.timeout:.2f} seconds",
                error_type,
            )
        else:  # the runtime exited while it held the event
            error_type, alive, status = "Runtime.ExitError", False, "error"
            reason = exit_reason(self.returncode if self.returncode is not None else -9)
            payload = _error_doc(f"RequestId: {request_id} Error: {reason}", error_type)

        # A runtime that answered and then exited: the answer stands, the sandbox is gone.
        alive = alive and not self.lifecycle.dead
        if alive:
            self.lifecycle.to(SandboxState.IDLE)
        text = self._invocation_log(request_id, output, duration_ms, status)
        return Outcome(payload, error_type, alive, text)

    def _invocation_log(
        self, request_id: str, output: bytes, duration_ms: float, status: str | None
    ) -> bytes:
        init_log, self._init_log = self._init_log, b""
        init_ms, self._init_duration_ms = self._init_duration_ms, None
        head = init_log + loglines.start(request_id, self.config.version).encode()
        tail = loglines.end(request_id) + loglines.report(
            request_id,
            duration_ms,
            self.config.memory_size,
            self._max_memory_mb(),
            init_ms,
            status,
        )
        self._to_sink(tail)
        assert self._output is not None
        self._output.sync()
        return head + output + tail.encode()

    def _to_sink(self, text: str) -> None:
        assert self._output is not None
        self._output.platform_line(text)

    # Teardown

    def kill(self) -> None:
        """Kill the sandbox; its pid namespace takes every process of the function with it."""
        if not self.lifecycle.dead:
            self.lifecycle.to(SandboxState.DEAD)
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.backend.stop(self._process.pid)

    async def stop(self, grace: float = SHUTDOWN_GRACE_S) -> None:
        """Shut the sandbox down: SIGTERM to the runtime, SIGKILL to all once `grace` passed."""
        runtime = self._runtime_pid()
        if runtime is not None and self._exit_watch is not None and not self._exit_watch.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(runtime, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._exit_watch), grace)
        self.kill()
        await self.wait_closed()

    async def _watch_exit(self) -> None:
        assert self._process is not None
        self.returncode = await self._process.wait()
        self.backend.exited(self._process.pid)
        self._last_memory_reading()
        if self._network is not None and self._network.returncode is None:
            self._network.kill()
        if self._output is not None:
            # The pid namespace died with the runtime, so nobody else holds the pipes open.
            self._output.drain()
            self._output.close()
        if self._current is not None and not self._current.done.done():
            self._current.done.set_result(("exit", b"", None))
        # An event the runtime never took: it may run elsewhere.
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if queued is not None and not queued.done.done():
                queued.done.set_result(("undelivered", b"", None))
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        if not self.lifecycle.dead:
            self.lifecycle.to(SandboxState.DEAD)
        if self._queue.empty():
            self._queue.put_nowait(None)
        log.debug("sandbox exited id=%s code=%s", self.sandbox_id, self.returncode)
        if self._info_fd >= 0:
            os.close(self._info_fd)
            self._info_fd = -1
        if self._on_exit is not None:
            self._on_exit(self)

    async def wait_closed(self) -> None:
        if self._exit_watch is not None:
            await self._exit_watch

    # Measurements

    def _reaper_pid(self) -> int | None:
        """The host pid of the pid namespace's init, bubblewrap's reaper (read once)."""
        if self._reaper_pid_cache is None and self._info_fd >= 0:
            text = b""
            with contextlib.suppress(OSError, ValueError, KeyError):
                # bubblewrap writes the document in one go, then keeps the pipe open.
                while chunk := os.read(self._info_fd, 4096):
                    text += chunk
                    with contextlib.suppress(ValueError):
                        self._reaper_pid_cache = int(json.loads(text)["child-pid"])
                        break
        return self._reaper_pid_cache

    def _runtime_pid(self) -> int | None:
        reaper = self._reaper_pid()
        if self._runtime_pid_cache is not None or reaper is None:
            return self._runtime_pid_cache
        # The runtime is the reaper's child.
        children = f"/proc/{reaper}/task/{reaper}/children"
        with contextlib.suppress(OSError, ValueError, IndexError), open(children) as handle:
            self._runtime_pid_cache = int(handle.read().split()[0])
        return self._runtime_pid_cache

    def _last_memory_reading(self) -> None:
        """Once the runtime is gone its peak can no longer be read; the peak of the sandbox's
        cgroup, read before the cgroup is removed, stands for it (MemorySize when the kernel
        killed the runtime for going past it), as Lambda reports a runtime that died."""
        cgroup = self.spec.cgroup
        peak = cgroup.peak_memory_bytes() if cgroup is not None else None
        if peak is not None:
            self._peak_memory_mb = max(self._peak_memory_mb, peak // (1024 * 1024))

    def _max_memory_mb(self) -> int:
        """The runtime's peak resident memory; the last reading once the sandbox is gone."""
        measured = self.backend.peak_memory_mb(self.sandbox_id)
        if measured is not None:
            self._peak_memory_mb = max(self._peak_memory_mb, measured)
            return self._peak_memory_mb
        if self.returncode is not None:
            return self._peak_memory_mb
        pid = self._runtime_pid()
        if pid is None and self.backend.name == PROCESS and self._process is not None:
            pid = self._process.pid  # a plain process: the runtime itself
        if pid is None:
            return self._peak_memory_mb
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    used = max(1, int(line.split()[1]) // 1024)
                    self._peak_memory_mb = max(self._peak_memory_mb, used)
        return self._peak_memory_mb


def _error_doc(message: str, error_type: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()
