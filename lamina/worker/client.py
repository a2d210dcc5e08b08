"""How the control plane calls a worker's API over HTTP."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import aiohttp

from lamina.registry.model import FunctionConfig
from lamina.worker import protocol


class WorkerUnavailable(Exception):
    """The worker did not answer, or answered with something it should not have."""

    def __init__(self, worker_id: str, detail: str) -> None:
        super().__init__(f"{worker_id}: {detail}")
        self.worker_id = worker_id


class WorkerUnreachable(WorkerUnavailable):
    """No connection to the worker could be made, so nothing was delivered to it."""


# A worker that takes longer than this to accept a connection is taken for unreachable.
CONNECT_TIMEOUT_S = 2.0
_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)
# Connection failures that prove nothing was delivered.
_NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class WorkerFailed(WorkerUnavailable):
    """The worker answered the call with an error status: it lives, but the call failed."""


class SandboxGone(Exception):
    """The worker no longer has the sandbox; the event did not reach it."""


@dataclass(frozen=True)
class SandboxStart:
    ok: bool
    init_duration_ms: float
    error_type: str | None
    reason: str | None
    log: bytes
    document: bytes | None


@dataclass(frozen=True)
class InvokeReply:
    payload: bytes
    error_type: str | None
    sandbox_alive: bool
    log_tail: str | None


class WorkerClient:
    def __init__(self, worker_id: str, base_url: str, session: aiohttp.ClientSession) -> None:
        self.worker_id = worker_id
        self.base_url = base_url
        self._session = session

    async def create_sandbox(
        self, sandbox_id: str, config: FunctionConfig, provisioned: bool = False
    ) -> SandboxStart:
        body = {"sandbox_id": sandbox_id, "config": config.to_dict(), "provisioned": provisioned}
        try:
            async with self._session.post(
                f"{self.base_url}/v1/sandboxes", json=body, timeout=_TIMEOUT
            ) as response:
                response.raise_for_status()
                doc = await response.json()
        except _NOT_CONNECTED as exc:
            raise WorkerUnreachable(self.worker_id, str(exc)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise WorkerUnavailable(self.worker_id, str(exc)) from exc
        return SandboxStart(
            ok=doc["ok"],
            init_duration_ms=doc["init_duration_ms"],
            error_type=doc["error_type"],
            reason=doc["reason"],
            log=base64.b64decode(doc["log"]),
            document=None if doc["document"] is None else base64.b64decode(doc["document"]),
        )

    async def invoke(
        self, sandbox_id: str, payload: bytes, headers: dict[str, str]
    ) -> InvokeReply:
        url = f"{self.base_url}/v1/sandboxes/{sandbox_id}/invoke"
        try:
            async with self._session.post(
                url, data=payload, headers=headers, timeout=_TIMEOUT
            ) as response:
                if response.status == 410:
                    raise SandboxGone(sandbox_id)
                response.raise_for_status()
                body = await response.read()
                reply = response.headers
        except _NOT_CONNECTED as exc:
            raise WorkerUnreachable(self.worker_id, str(exc)) from exc
        except aiohttp.ClientResponseError as exc:
            raise WorkerFailed(self.worker_id, f"{exc.status} {exc.message}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise WorkerUnavailable(self.worker_id, str(exc)) from exc
        return InvokeReply(
            payload=body,
            error_type=reply.get(protocol.ERROR_TYPE),
            sandbox_alive=reply.get(protocol.SANDBOX_ALIVE) == "1",
            log_tail=reply.get(protocol.LOG_TAIL),
        )

    async def destroy(self, sandbox_id: str) -> None:
        try:
            async with self._session.delete(
                f"{self.base_url}/v1/sandboxes/{sandbox_id}", timeout=_TIMEOUT
            ):
                pass
        except (aiohttp.ClientError, OSError) as exc:
            raise WorkerUnavailable(self.worker_id, str(exc)) from exc
