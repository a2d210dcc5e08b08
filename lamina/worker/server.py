"""The worker's HTTP API, which only the control plane calls.

Every route but health answers only a caller that sends the platform token (`X-Lamina-Token`),
as the frontend's own endpoints do: whoever reaches the worker's port without it may neither
start sandboxes for any account's function nor run events in them or destroy them.

    GET    /v1/health                    capacity, zone, sandboxes by state, runtimes
    POST   /v1/sandboxes                 start a sandbox and run its init phase
    POST   /v1/sandboxes/{id}/invoke     run one event in an idle sandbox
    DELETE /v1/sandboxes/{id}            destroy a sandbox

An invoke answers 200 with the function's payload whatever the function did; headers tell the
caller whether it failed, whether the sandbox survived, and carry the log tail. 410 means the
sandbox is gone and the event never reached it, so the caller may run it elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import os
import secrets
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from lamina.auth.platform import TOKEN_HEADER
from lamina.auth.sessions import SessionAuthority, session_key
from lamina.clock import SystemClock
from lamina.eventloop import LISTEN_BACKLOG
from lamina.registry.model import FunctionConfig
from lamina.sandbox import logs as loglines
from lamina.sandbox.instance import Invocation
from lamina.sandbox.pool import DEFAULT_SIZE
from lamina.worker import protocol
from lamina.worker.agent import SandboxGone, WorkerAgent, WorkerIdentity
from lamina.worker.membership import RETRY_S, MembershipThread, Published, publish_every

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 7 * 1024 * 1024


def build_app(agent: WorkerAgent, token: str) -> web.Application:
    app = web.Application(
        client_max_size=MAX_EVENT_BYTES, middlewares=[_platform_only(token.encode())]
    )
    app.add_routes(
        [
            web.get("/v1/health", lambda _: _health(agent)),
            web.post("/v1/sandboxes", lambda r: _create(agent, r)),
            web.post("/v1/sandboxes/{sandbox_id}/invoke", lambda r: _invoke(agent, r)),
            web.delete("/v1/sandboxes/{sandbox_id}", lambda r: _destroy(agent, r)),
        ]
    )
    return app


def _platform_only(token: bytes) -> Any:
    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/v1/health":
            given = request.headers.get(TOKEN_HEADER, "").encode()
            if not token or not hmac.compare_digest(given, token):
                raise web.HTTPForbidden(text="This worker answers only Lamina's own parts.")
        return await handler(request)

    return check


async def _health(agent: WorkerAgent) -> web.Response:
    return web.json_response(agent.health())


async def _create(agent: WorkerAgent, request: web.Request) -> web.Response:
    doc = await request.json()
    config = FunctionConfig.from_dict(doc["config"])
    provisioned = doc.get("provisioned") is True
    outcome = await agent.create_sandbox(doc["sandbox_id"], config, provisioned)
    return web.json_response(
        {
            "ok": outcome.ok,
            "init_duration_ms": outcome.duration_ms,
            "error_type": outcome.error_type,
            "reason": outcome.reason,
            "log": base64.b64encode(outcome.log).decode(),
            "document": _b64(outcome.document),
        },
        status=201 if outcome.ok else 200,
    )


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


async def _invoke(agent: WorkerAgent, request: web.Request) -> web.Response:
    headers = request.headers
    invocation = Invocation(
        request_id=headers[protocol.REQUEST_ID],
        payload=await request.read(),
        invoked_arn=headers[protocol.INVOKED_ARN],
        trace_id=headers.get(protocol.TRACE_ID, ""),
        client_context=headers.get(protocol.CLIENT_CONTEXT),
        cognito_identity=headers.get(protocol.COGNITO_IDENTITY),
    )
    try:
        outcome = await agent.invoke(request.match_info["sandbox_id"], invocation)
    except SandboxGone:
        raise web.HTTPGone() from None

    reply = {protocol.SANDBOX_ALIVE: "1" if outcome.sandbox_alive else "0"}
    if outcome.error_type is not None:
        reply[protocol.ERROR_TYPE] = outcome.error_type
    if headers.get(protocol.WANT_LOG_TAIL) == "1":
        reply[protocol.LOG_TAIL] = loglines.tail(outcome.log)
    response = web.Response(body=outcome.payload, headers=reply)
    await response.prepare(request)
    await response.write_eof()
    agent.answered(request.match_info["sandbox_id"])
    return response


async def _destroy(agent: WorkerAgent, request: web.Request) -> web.Response:
    await agent.destroy(request.match_info["sandbox_id"])
    return web.Response(status=204)


async def serve(
    identity: WorkerIdentity,
    host: str,
    port: int,
    state_dir: Path,
    join_url: str,
    advertise_host: str | None = None,
    log_store: Path | None = None,
    token: str = "",
    socket_path: Path | None = None,
    isolation: str | None = None,
    pool_size: int = DEFAULT_SIZE,
) -> None:
    """Run a worker until SIGTERM or SIGINT; every sandbox dies with it.

    It joins the fleet at `join_url` (the frontend, which also serves the code) and keeps its
    membership lease; once admitted it prints one JSON line with its URL on stdout. `token` is
    the platform token: it proves the worker to the frontend and seals sandbox credentials.
    `socket_path` also serves the API on a Unix socket, for a frontend on the same host.
    """
    session = aiohttp.ClientSession(headers={TOKEN_HEADER: token})

    async def fetch_code(sha256_hex: str) -> bytes:
        async with session.get(f"{join_url}/_lamina/v1/code/{sha256_hex}") as response:
            response.raise_for_status()
            return await response.read()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    clock = SystemClock()
    sessions = SessionAuthority(session_key(token), clock)
    agent = WorkerAgent(
        identity,
        state_dir,
        fetch_code,
        clock,
        log_store=log_store,
        sessions=sessions,
        isolation=isolation,
        pool_size=pool_size,
    )
    runner = web.AppRunner(build_app(agent, token), access_log=None, handle_signals=False)
    membership: MembershipThread | None = None
    publishing: asyncio.Task[None] | None = None
    try:
        await agent.start()
        await runner.setup()
        await web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG).start()
        if socket_path is not None:
            await _serve_unix(runner, socket_path)
        url = f"http://{advertise_host or host}:{runner.addresses[0][1]}"
        incarnation = secrets.token_hex(8)

        def describe() -> dict[str, object]:
            return {
                **agent.health(),
                "url": url,
                "incarnation": incarnation,
                "idle_sandboxes": agent.idle_sandboxes(),
            }

        joined = asyncio.Event()
        published = Published(clock)
        published.publish(describe())
        publishing = loop.create_task(publish_every(published, describe, RETRY_S))
        membership = MembershipThread(join_url, token, published, agent.destroy_idle, joined)
        membership.start()
        await _first_of(joined.wait(), stop.wait())
        if joined.is_set():
            print(json.dumps({"worker_id": identity.worker_id, "url": url}), flush=True)
            log.info("worker joined id=%s url=%s frontend=%s", identity.worker_id, url, join_url)
        await stop.wait()
    finally:
        if membership is not None:
            membership.stop()
        if publishing is not None:
            publishing.cancel()
        await runner.cleanup()
        await agent.close()
        await session.close()


async def _serve_unix(runner: web.AppRunner, path: Path) -> None:
    """The same API on a Unix socket only this host's owner of the worker may connect to."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a worker that was killed
    await web.UnixSite(runner, str(path), backlog=LISTEN_BACKLOG).start()
    os.chmod(path, 0o600)


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
