"""The Lambda Runtime API, served to each sandbox on a Unix socket of its own and on
AWS_LAMBDA_RUNTIME_API's TCP port, where the worker opened that listener.

A sandbox reaches nothing of the host's network, so its runtime reaches the worker through a
socket file mounted into it, or through a listener the worker opened in the sandbox's own
network namespace (`network.listen_inside`; a plain process's is a loopback port of its own).
One server answers all sandboxes of a worker; the socket a request arrived on names the
sandbox: the listener that accepted it is that sandbox's alone (every bubblewrap sandbox's TCP
listener has the same address, each in its own namespace), so one sandbox can never act on
another's invocation. A sandbox holds at most MAX_CONNECTIONS connections at once over all its
sockets, so it cannot take the worker's descriptors from the others.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from lamina.sandbox.instance import MAX_RESPONSE_BYTES, RuntimeApiError, Sandbox

log = logging.getLogger(__name__)

PREFIX = "/2018-06-01/runtime"
# The connections one sandbox may hold open to the worker, over all its sockets: a runtime
# needs one or two; past that, connections wait unaccepted in the listener's backlog.
MAX_CONNECTIONS = 32
_BACKLOG = 64
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_ACCEPT_PAUSE_S = 0.5
# How much of a too large answer is read and dropped before the connection is cut instead.
_DRAIN_LIMIT = 4 * MAX_RESPONSE_BYTES
_TOO_LARGE = RuntimeApiError(
    413,
    "RequestEntityTooLarge",
    f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
)


class _MalformedAtDebug(logging.Filter):
    """Malformed HTTP comes from the function in the sandbox, not from a fault of the
    worker's: it is logged at debug level, so that a function cannot fill the worker's log.
    Every other error of a request stays an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError) and record.levelno > logging.DEBUG:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return _requests_log.isEnabledFor(logging.DEBUG)
        return True


_requests_log = logging.getLogger(f"{__name__}.requests")
_requests_log.addFilter(_MalformedAtDebug())


@dataclass
class _Listeners:
    """The sockets one sandbox's Runtime API is served on, and its room for connections."""

    room: asyncio.Semaphore
    sockets: list[socket.socket] = field(default_factory=list)
    accepting: list[asyncio.Task[None]] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    """One connection of a sandbox, served by aiohttp's `handler`: it names its sandbox's
    socket path in `paths` and holds a unit of the sandbox's room while it is open."""

    def __init__(
        self,
        handler: asyncio.Protocol,
        room: asyncio.Semaphore,
        path: str,
        paths: dict[asyncio.BaseTransport, str],
    ) -> None:
        self._handler = handler
        self._room = room
        self._path = path
        self._paths = paths
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._paths[transport] = self._path
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._handler.connection_lost(exc)
        finally:
            if self._transport is not None:
                self._paths.pop(self._transport, None)
            self._room.release()


class RuntimeApiServer:
    def __init__(self) -> None:
        self._by_socket: dict[str, Sandbox] = {}
        # What serves each sandbox, by its socket's path, and the socket path each open
        # connection came in on: the listener that accepted it names its sandbox.
        self._listeners: dict[str, _Listeners] = {}
        self._path_of: dict[asyncio.BaseTransport, str] = {}
        app = web.Application(client_max_size=MAX_RESPONSE_BYTES)
        app.add_routes(
            [
                web.get(f"{PREFIX}/invocation/next", self._next),
                web.post(f"{PREFIX}/invocation/{{request_id}}/response", self._response),
                web.post(f"{PREFIX}/invocation/{{request_id}}/error", self._error),
                web.post(f"{PREFIX}/init/error", self._init_error),
            ]
        )
        # Long polls of dead sandboxes must not hold up a stop. A `next` whose runtime hung up
        # is cancelled, so it cannot take an event that nobody would receive.
        # Known gap: an event that arrives before the hang-up is seen still goes to that poll.
        # Known gap: so is a post whose client closed before its body was read (a runtime that
        # exits without reading the answer to its post may lose that post).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            handler_cancellation=True,
            logger=_requests_log,
        )

    async def start(self) -> None:
        await self._runner.setup()

    async def close(self) -> None:
        for path in list(self._listeners):
            await self.shut(path)
        await self._runner.cleanup()

    async def open(self, path: str) -> None:
        """Open a socket before its sandbox exists (a blank sandbox's, started ahead of need);
        a request on it is answered 410 until a sandbox is attached to it."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            # The runtime runs under another uid inside its user namespace.
            os.chmod(path, 0o666)
            listener.listen(_BACKLOG)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._serve(path, listener)

    async def listen(self, path: str, listener: socket.socket) -> None:
        """Also serve the sandbox of socket `path` on `listener`, a TCP socket the worker
        opened for that sandbox alone; `shut(path)` closes it."""
        self._serve(path, listener)

    async def attach(self, sandbox: Sandbox) -> None:
        """Serve the sandbox on its socket, opened now unless it was already, before its
        runtime asks for anything."""
        path = sandbox.socket_path
        if path not in self._listeners:
            await self.open(path)
        self._by_socket[path] = sandbox

    async def detach(self, sandbox: Sandbox) -> None:
        await self.shut(sandbox.socket_path)

    async def shut(self, path: str) -> None:
        """Stop serving the sandbox of socket `path`: close its listeners, so that nothing
        listens for it any more."""
        self._by_socket.pop(path, None)
        listeners = self._listeners.pop(path, None)
        if listeners is None:
            return
        for task in listeners.accepting:
            task.cancel()
        await asyncio.gather(*listeners.accepting, return_exceptions=True)
        for listener in listeners.sockets:
            listener.close()

    def _serve(self, path: str, listener: socket.socket) -> None:
        listeners = self._listeners.get(path)
        if listeners is None:
            listeners = self._listeners[path] = _Listeners(asyncio.Semaphore(MAX_CONNECTIONS))
        listeners.sockets.append(listener)
        accepting = self._accept(path, listener, listeners.room)
        listeners.accepting.append(asyncio.get_running_loop().create_task(accepting))

    async def _accept(self, path: str, listener: socket.socket, room: asyncio.Semaphore) -> None:
        """Accept a sandbox's connections while it holds fewer than MAX_CONNECTIONS: past
        that, new ones wait in the listener's backlog, so one sandbox cannot take all of the
        worker's descriptors."""
        loop = asyncio.get_running_loop()
        while True:
            await room.acquire()
            try:
                connection, _ = await loop.sock_accept(listener)
            except OSError as error:
                room.release()
                if error.errno in _OUT_OF_RESOURCES:
                    log.warning("runtime api accept paused: %s", error)
                    await asyncio.sleep(_ACCEPT_PAUSE_S)
                continue
            try:
                await loop.connect_accepted_socket(
                    lambda: self._connection(room, path), connection
                )
            except OSError as error:
                log.debug("runtime api connection lost at once: %s", error)
                connection.close()

    def _connection(self, room: asyncio.Semaphore, path: str) -> asyncio.Protocol:
        server = self._runner.server
        if server is None:
            raise OSError("the Runtime API is stopping")
        return _Connection(server(), room, path, self._path_of)

    def _sandbox(self, request: web.Request) -> Sandbox:
        # A connection whose client is gone already names no sandbox.
        transport = request.transport
        closed = transport is None or transport.is_closing()
        sandbox = None if closed else self._by_socket.get(self._path_of.get(transport, ""))
        if sandbox is None:
            raise web.HTTPGone()
        return sandbox

    async def _next(self, request: web.Request) -> web.StreamResponse:
        try:
            invocation = await self._sandbox(request).next_invocation()
        except RuntimeApiError as exc:
            return _error_response(exc)
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": invocation.invoked_arn,
            "Content-Type": "application/json",
        }
        # Lambda omits these headers when they have no value.
        optional = {
            "Lambda-Runtime-Trace-Id": invocation.trace_id,
            "Lambda-Runtime-Client-Context": invocation.client_context,
            "Lambda-Runtime-Cognito-Identity": invocation.cognito_identity,
        }
        headers.update({k: v for k, v in optional.items() if v})
        return web.Response(body=invocation.payload, headers=headers)

    async def _response(self, request: web.Request) -> web.StreamResponse:
        sandbox = self._sandbox(request)
        request_id = request.match_info["request_id"]
        try:
            body = await _read_body(request)
            if body is None:
                # The invocation ends with Lambda's size error; the runtime hears 413.
                sandbox.post_oversize_response(request_id)
                raise _TOO_LARGE
            sandbox.post_response(request_id, body)
        except RuntimeApiError as exc:
            return _error_response(exc)
        return _accepted()

    async def _error(self, request: web.Request) -> web.StreamResponse:
        sandbox = self._sandbox(request)
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type")
        try:
            body = await _read_body(request)
            if body is None:
                raise _TOO_LARGE
            sandbox.post_error(request.match_info["request_id"], error_type, body)
        except RuntimeApiError as exc:
            return _error_response(exc)
        return _accepted()

    async def _init_error(self, request: web.Request) -> web.StreamResponse:
        sandbox = self._sandbox(request)
        error_type = request.headers.get("Lambda-Runtime-Function-Error-Type")
        try:
            body = await _read_body(request)
            if body is None:
                raise _TOO_LARGE
            sandbox.post_init_error(error_type, body)
        except RuntimeApiError as exc:
            return _error_response(exc)
        return _accepted()


async def _read_body(request: web.Request) -> bytes | None:
    """The request's body, or None when it is over Lambda's 6 MB + 100 bytes.

    A too large body is still read (up to a bound), so the runtime, which is still sending it,
    receives the 413 instead of a reset connection.
    """
    body = bytearray()
    received = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        received += len(chunk)
        if received <= MAX_RESPONSE_BYTES:
            body += chunk
        elif received > _DRAIN_LIMIT:
            break
    return bytes(body) if received <= MAX_RESPONSE_BYTES else None


def _accepted() -> web.Response:
    return web.json_response({"status": "OK"}, status=202)


def _error_response(exc: RuntimeApiError) -> web.Response:
    body = {"errorType": exc.error_type, "errorMessage": exc.message}
    return web.Response(status=exc.status, text=json.dumps(body), content_type="application/json")
