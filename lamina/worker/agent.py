"""The worker agent: creates, invokes and destroys the sandboxes of one host.

The frontend's assignment part calls it over HTTP (see `server.py`); this module holds the
state behind those calls and no HTTP at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import secrets
import shutil
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.auth.sessions import SessionAuthority
from lamina.clock import Clock, SystemClock
from lamina.logs.sink import StreamSink
from lamina.logs.store import LogStore
from lamina.registry.model import FunctionConfig, runtime_version_arn
from lamina.sandbox import bwrap, entrypoint, leftovers, seccomp
from lamina.sandbox import logs as loglines
from lamina.sandbox.backend import (
    NAMESPACE,
    PROCESS,
    Backends,
    IsolationBackend,
    backend_classes,
    open_backends,
)
from lamina.sandbox.cgroups import CgroupTree, Limits
from lamina.sandbox.hostids import HostIds
from lamina.sandbox.instance import (
    INIT_TIMEOUT_S,
    EventNotDelivered,
    InitOutcome,
    Invocation,
    Outcome,
    Sandbox,
)
from lamina.sandbox.launch import AssignmentFailed
from lamina.sandbox.network import NetworkMode
from lamina.sandbox.pool import DEFAULT_SIZE, Blank, PoolKey, SandboxPool, startup_matches
from lamina.sandbox.process import WARNING_LINE
from lamina.sandbox.runtime_api import RuntimeApiServer
from lamina.sandbox.states import SandboxState
from lamina.worker import precompile
from lamina.worker.blanks import Blanks
from lamina.worker.codecache import CodeCache, Fetch
from lamina.worker.interpreters import CUSTOM_RUNTIMES, Interpreter, discover

log = logging.getLogger(__name__)

# Lambda's names for the machine architectures a worker may run on.
LAMBDA_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64"}

# Lamina's own runtime code, mounted read-only into every sandbox at /var/runtime.
RUNTIME_SOURCE = Path(__file__).resolve().parents[1] / "runtime"
# The size of /tmp most functions have (Lambda's default EphemeralStorage).
_DEFAULT_TMP_MB = 512
# Lambda's defaults, which a function's own variables of the same names replace.
_LAMBDA_DEFAULTS = {
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "LANG": "en_US.UTF-8",
    "TZ": ":UTC",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:"
    "/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
}
# What every function's sandbox is given, whatever the function sets.
_SANDBOX_ENVIRONMENT = {
    "AWS_LAMBDA_RUNTIME_API": bwrap.RUNTIME_API_ADDRESS,
    "LAMBDA_TASK_ROOT": bwrap.TASK_ROOT,
    "LAMBDA_RUNTIME_DIR": bwrap.RUNTIME_DIR,
    "LAMINA_RUNTIME_SOCKET": f"{bwrap.SOCKET_DIR}/{bwrap.SOCKET_NAME}",
}
# The part of every sandbox's environment that is the same for every function that does
# not set its own LANG, TZ or paths: what a blank sandbox starts with.
_PLATFORM_ENVIRONMENT = {**_SANDBOX_ENVIRONMENT, **_LAMBDA_DEFAULTS}


class SandboxGone(Exception):
    """The sandbox named does not exist here or is no longer usable."""


@dataclass(frozen=True)
class WorkerIdentity:
    worker_id: str
    zone: str
    memory_capacity_mb: int
    region: str = "us-east-1"
    account_id: str = "000000000000"


class WorkerAgent:
    def __init__(
        self,
        identity: WorkerIdentity,
        state_dir: Path,
        fetch_code: Fetch,
        clock: Clock | None = None,
        interpreters: dict[str, Interpreter] | None = None,
        log_store: Path | None = None,
        sessions: SessionAuthority | None = None,
        isolation: str | None = None,
        pool_size: int = DEFAULT_SIZE,
    ) -> None:
        self.identity = identity
        # Mints each sandbox's credentials; without it sandboxes get none.
        self.sessions = sessions
        self.state_dir = state_dir
        self.clock = clock or SystemClock()
        self.logs = LogStore(log_store or state_dir / "logs.db", self.clock)
        self.interpreters = interpreters if interpreters is not None else discover()
        self.code = CodeCache(state_dir / "code", fetch_code)
        self.runtime_api = RuntimeApiServer()
        self.sandboxes: dict[str, Sandbox] = {}
        self._detaching: set[asyncio.Task[None]] = set()
        name = leftovers.worker_name(identity.worker_id, state_dir)
        self._socket_root = leftovers.socket_root(name)
        self.cgroups = CgroupTree(name)
        self.host_ids = HostIds(name)
        self._seccomp = seccomp.compile_filter()
        self._isolation = isolation
        self.backends = Backends("", {})
        self._hardened = False
        self._runtimes: dict[str, precompile.RuntimeFiles] = {}
        self.blanks = Blanks(
            state_dir / "slots",
            self._socket_root,
            self._interpreter_at,
            self._launch_spec,
            _PLATFORM_ENVIRONMENT,
            lambda spec, backend, launch_id: self._in_background(
                self._release(spec, backend, launch_id)
            ),
            self.runtime_api.open,
            self.runtime_api.listen,
            self._offered,
        )
        self.pool = SandboxPool(self.blanks, pool_size)
        # The pool key of each new sandbox whose first invoke has not ended yet.
        self._refill_later: dict[str, PoolKey] = {}

    async def start(self) -> None:
        self.backends = open_backends(self.state_dir / "isolation", self._isolation)
        # Only `process` runs without root, and it holds nothing a sweep or cgroup covers.
        self._hardened = os.geteuid() == 0
        if self._hardened:
            await leftovers.sweep(self.cgroups, self.host_ids, self._socket_root)
            self.cgroups.prepare()
        for backend in self.backends.offered.values():
            await asyncio.to_thread(backend.remove_leftovers)
        self._socket_root.mkdir(mode=0o755)
        bwrap.write_identity_files(self.state_dir / "etc")
        self._runtimes = await precompile.prepare_all(
            self.state_dir / "runtime", RUNTIME_SOURCE, list(self.interpreters.values())
        )
        await self.runtime_api.start()
        # The Python the custom runtimes use is the host's python3: the likeliest first ask.
        custom = self.interpreters.get(CUSTOM_RUNTIMES[0])
        if not any(backend.starts_blanks for backend in self.backends.offered.values()):
            self.pool.size = 0
        # gVisor's blanks wait until a gVisor function asks for them.
        elif NAMESPACE in self.backends.offered and custom is not None:
            key = PoolKey(custom.host_executable, _DEFAULT_TMP_MB, NetworkMode.OUTBOUND)
            self.pool.replenish(key)
        log.info(
            "worker ready id=%s zone=%s memory=%dMB runtimes=%s isolation=%s (offered: %s)",
            self.identity.worker_id,
            self.identity.zone,
            self.identity.memory_capacity_mb,
            ",".join(sorted(self.interpreters)),
            self.backends.default,
            ",".join(self.backends.offered),
        )

    async def close(self) -> None:
        # The blanks first: a refill must not start one while the sandboxes go.
        await self.pool.close()
        await asyncio.gather(*(s.stop() for s in list(self.sandboxes.values())))
        if self._detaching:
            await asyncio.gather(*self._detaching, return_exceptions=True)
        await self.runtime_api.close()
        self.logs.close()
        shutil.rmtree(self._socket_root, ignore_errors=True)
        if self._hardened:
            self.cgroups.remove()
        log.info("worker stopped id=%s", self.identity.worker_id)

    # Reports

    def memory_reserved_mb(self) -> int:
        return sum(s.config.memory_size for s in self.sandboxes.values())

    def health(self) -> dict[str, object]:
        states: dict[str, int] = {}
        for sandbox in self.sandboxes.values():
            states[sandbox.state.value] = states.get(sandbox.state.value, 0) + 1
        return {
            "worker_id": self.identity.worker_id,
            "zone": self.identity.zone,
            "memory_capacity_mb": self.identity.memory_capacity_mb,
            "memory_reserved_mb": self.memory_reserved_mb(),
            "sandboxes": states,
            "blank_sandboxes": sum(self.pool.counts().values()),
            "blank_sandboxes_ready": self.pool.ready_by_mode(),
            "runtimes": {k: v.version for k, v in sorted(self.interpreters.items())},
            "architecture": LAMBDA_ARCHITECTURE.get(platform.machine(), platform.machine()),
            "isolation": list(self.backends.offered),
        }

    # Sandboxes

    async def create_sandbox(
        self, sandbox_id: str, config: FunctionConfig, provisioned: bool = False
    ) -> InitOutcome:
        """Start a sandbox for one function version and run its init phase; `provisioned`
        for one that provisioned concurrency keeps."""
        # A create that follows a create: no first invoke is coming in between.
        for waiting in list(self._refill_later):
            self._refill(waiting)
        interpreter = self.interpreters.get(config.runtime)
        if interpreter is None:
            return InitOutcome(
                False, 0.0, "Runtime.InvalidEntrypoint", f"{config.runtime} is not on this host"
            )

        backend = self.backends.get(config.isolation)
        if backend is None:
            reason = f"isolation backend {config.isolation} is not offered by this worker"
            log.warning("sandbox refused id=%s function=%s: %s", sandbox_id, config.name, reason)
            return InitOutcome(False, 0.0, "Runtime.InvalidEntrypoint", reason)

        code_dir = await self.code.directory(config.code_sha256)
        problem = entrypoint.problem(code_dir) if interpreter.custom else None
        if problem is not None:
            log.info("sandbox refused id=%s function=%s: %s", sandbox_id, config.name, problem)
            return InitOutcome(False, 0.0, entrypoint.ERROR_TYPE, problem)

        stream = _log_stream_name(config.version, self.clock.time())
        env = self._environment(config, stream, interpreter, provisioned)
        env |= self._credentials(config, sandbox_id)
        network = NetworkMode(config.network)
        limits = backend.limits(config.memory_size)
        blank = None
        if backend.starts_blanks:
            blank = await self._blank_for(
                sandbox_id, config, backend.name, interpreter, code_dir, env, limits
            )
        if blank is not None:
            spec = blank[1]
        else:
            socket_dir = self._socket_root / sandbox_id
            socket_dir.mkdir(mode=0o755)
            spec = self._launch_spec(
                sandbox_id,
                interpreter,
                code_dir,
                socket_dir,
                config.ephemeral_storage,
                network,
                limits,
                backend.name,
            )
        logs = self.logs.for_account(config.account_id)
        sink = StreamSink(logs, config.log_group, stream, self.clock)
        arn = runtime_version_arn(self.identity.region, config.runtime)
        sink.write(loglines.init_start(config.runtime, arn).encode())
        if backend.name == PROCESS:
            sink.write(WARNING_LINE.encode())
        sandbox = Sandbox(
            sandbox_id,
            config,
            spec,
            env,
            self.clock,
            log_sink=sink,
            on_exit=self._forget,
            backend=backend,
            serve_listener=self.runtime_api.listen,
        )
        self.sandboxes[sandbox_id] = sandbox
        await self.runtime_api.attach(sandbox)

        # Lambda gives an init that overruns 10 s a second try within the function's timeout.
        init_timeout = max(INIT_TIMEOUT_S, config.timeout)
        try:
            outcome = await sandbox.start(init_timeout, blank[0].launch if blank else None)
        except AssignmentFailed as error:
            assert blank is not None
            log.info("blank sandbox lost id=%s: %s; starting cold", blank[0].blank_id, error)
            await self._abandon(sandbox, blank[0])
            sink.close()
            return await self.create_sandbox(sandbox_id, config)
        if outcome.ok and spec.cgroup is not None:
            spec.cgroup.throttle(limits)
        if backend.starts_blanks:
            self._refill_later[sandbox_id] = _pool_key(config, backend.name, interpreter)
        if not outcome.ok:
            self._refill(sandbox_id)
        log.info(
            "sandbox %s id=%s function=%s init=%.1fms pooled=%s",
            "ready" if outcome.ok else "failed",
            sandbox_id,
            config.name,
            outcome.duration_ms,
            blank is not None,
        )
        return outcome

    async def _blank_for(
        self,
        sandbox_id: str,
        config: FunctionConfig,
        isolation: str,
        interpreter: Interpreter,
        code_dir: Path,
        env: dict[str, str],
        limits: Limits,
    ) -> tuple[Blank, bwrap.LaunchSpec] | None:
        """A blank sandbox of the pool holding the function's code and limits, if one fits."""
        if not startup_matches(self.blanks.environment, env):
            return None
        blank = self.pool.take(_pool_key(config, isolation, interpreter))
        if blank is None:
            return None
        try:
            fitted = await self.blanks.fit(blank, sandbox_id, code_dir, interpreter, limits)
            return blank, fitted
        except OSError as error:
            log.warning("blank sandbox unusable id=%s: %s", blank.blank_id, error)
            self.blanks.discard(blank)
            return None

    async def _abandon(self, sandbox: Sandbox, blank: Blank) -> None:
        """Forget a sandbox whose blank died before it could be assigned."""
        self.sandboxes.pop(sandbox.sandbox_id, None)
        await self.runtime_api.detach(sandbox)
        self.blanks.discard(blank)
        self.blanks.release(sandbox.spec)
        # Awaited: the cold start that follows reuses the sandbox's id, under which its
        # backend knows the blank's container until this release.
        await self._release(sandbox.spec, sandbox.backend, sandbox.sandbox_id)

    def _launch_spec(
        self,
        name: str,
        interpreter: Interpreter,
        code_dir: Path,
        socket_dir: Path,
        tmp_size_mb: int,
        network: NetworkMode,
        limits: Limits,
        isolation: str = NAMESPACE,
    ) -> bwrap.LaunchSpec:
        """Every layer of one sandbox, blank or not, that its isolation backend takes: under
        `namespace` its cgroup, its own host uid and the seccomp filter (gVisor's kernel
        applies the filter itself and runs as one host user; `process` takes none)."""
        runtime = self._runtimes.get(interpreter.host_executable)
        host_id = self.host_ids.claim() if isolation == NAMESPACE else None
        try:
            cgroup = self.cgroups.create(name, limits) if isolation != PROCESS else None
        except BaseException:
            if host_id is not None:
                self.host_ids.release(host_id)
            raise
        return bwrap.LaunchSpec(
            code_dir=code_dir,
            runtime_dir=runtime.directory if runtime else RUNTIME_SOURCE,
            socket_dir=socket_dir,
            interpreter=interpreter,
            tmp_size_mb=tmp_size_mb,
            etc_dir=self.state_dir / "etc",
            seccomp=self._seccomp if isolation == NAMESPACE else None,
            cgroup=cgroup,
            host_id=host_id,
            network=network,
            memory_mb=limits.memory_mb,
            entry=runtime.entry if runtime else precompile.SOURCE,
        )

    def answered(self, sandbox_id: str) -> None:
        """The answer to an invoke of the sandbox has been sent: its blank may be replaced."""
        self._refill(sandbox_id)

    def _refill(self, sandbox_id: str) -> None:
        """Start replacing the blank a new sandbox took (or its key's first blanks), now that
        its first invoke is answered: starting a sandbox earlier would compete with that
        invoke, the end of the cold start the client waits for, and starting one forks the
        worker, which holds up its event loop."""
        key = self._refill_later.pop(sandbox_id, None)
        if key is not None:
            self.pool.replenish(key)

    def _offered(self, name: str) -> IsolationBackend:
        """A backend blanks start under; the pool asks only for those the worker offers."""
        return self.backends.offered[name]

    def _interpreter_at(self, executable: str) -> Interpreter:
        return next(i for i in self.interpreters.values() if i.host_executable == executable)

    async def invoke(self, sandbox_id: str, invocation: Invocation) -> Outcome:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.state is not SandboxState.IDLE:
            raise SandboxGone(sandbox_id)
        try:
            outcome = await sandbox.invoke(invocation)
        except EventNotDelivered:
            request_id = invocation.request_id
            log.info("event not delivered sandbox=%s request=%s", sandbox_id, request_id)
            raise SandboxGone(sandbox_id) from None
        log.debug(
            "invoke done sandbox=%s request=%s error=%s",
            sandbox_id,
            invocation.request_id,
            outcome.error_type,
        )
        return outcome

    def idle_sandboxes(self) -> list[str]:
        return [i for i, s in self.sandboxes.items() if s.state is SandboxState.IDLE]

    async def destroy_idle(self, sandbox_ids: list[str]) -> None:
        """Destroy those of `sandbox_ids` that are still idle (none has taken an event since)."""
        for sandbox_id in sandbox_ids:
            sandbox = self.sandboxes.get(sandbox_id)
            if sandbox is not None and sandbox.state is SandboxState.IDLE:
                await self.destroy(sandbox_id)

    async def destroy(self, sandbox_id: str) -> None:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            return
        await sandbox.stop()

    def _forget(self, sandbox: Sandbox) -> None:
        self.sandboxes.pop(sandbox.sandbox_id, None)
        self._refill(sandbox.sandbox_id)
        shutil.rmtree(sandbox.spec.socket_dir, ignore_errors=True)
        self.blanks.release(sandbox.spec)
        # Stopping the socket's site and releasing the sandbox's holds are asynchronous; the
        # sandbox is gone either way.
        self._in_background(self.runtime_api.detach(sandbox))
        self._in_background(self._release(sandbox.spec, sandbox.backend, sandbox.sandbox_id))

    async def _release(
        self, spec: bwrap.LaunchSpec, backend: IsolationBackend, launch_id: str
    ) -> None:
        """Free what a sandbox (or a blank, which has no `Sandbox` yet) held: `launch_id`
        names it to its backend."""
        # A blank's socket was opened before any sandbox was attached to it.
        await self.runtime_api.shut(str(spec.socket_dir / bwrap.SOCKET_NAME))
        # Whatever the sandbox left running dies with its cgroup; only then is its id free.
        if spec.cgroup is not None:
            await spec.cgroup.release()
        if spec.host_id is not None:
            self.host_ids.release(spec.host_id)
        await backend.release(launch_id)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._detaching.add(task)
        task.add_done_callback(self._detaching.discard)

    def _credentials(self, config: FunctionConfig, sandbox_id: str) -> dict[str, str]:
        """The function's own short-lived credentials, as Lambda sets its role's."""
        if self.sessions is None:
            return {}
        minted = self.sessions.mint(config.account_id, config.name, config.role, sandbox_id)
        return minted.environment()

    def _environment(
        self,
        config: FunctionConfig,
        stream: str,
        interpreter: Interpreter,
        provisioned: bool = False,
    ) -> dict[str, str]:
        region = self.identity.region
        env = {**_LAMBDA_DEFAULTS, **config.environment}
        env.update(
            {
                "_HANDLER": config.handler,
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_LAMBDA_FUNCTION_NAME": config.name,
                "AWS_LAMBDA_FUNCTION_VERSION": config.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_size),
                "AWS_LAMBDA_INITIALIZATION_TYPE": (
                    "provisioned-concurrency" if provisioned else "on-demand"
                ),
                "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": stream,
                **_SANDBOX_ENVIRONMENT,
            }
        )
        # Lambda names the execution environment only for its managed runtimes.
        if not interpreter.custom:
            env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{config.runtime}"
        return env


def _pool_key(config: FunctionConfig, isolation: str, interpreter: Interpreter) -> PoolKey:
    network = NetworkMode(config.network)
    return PoolKey(interpreter.host_executable, config.ephemeral_storage, network, isolation)


async def remove_remains(worker_id: str, state_dir: Path) -> None:
    """Remove what a dead worker left on the host (its sandboxes' processes and cgroups, uid
    claims, sockets, slots, gVisor containers), as its next start would: for a platform that
    stops instead of starting it again."""
    if os.geteuid() != 0:
        return  # only `process` runs without root, and it holds none of these
    name = leftovers.worker_name(worker_id, state_dir)
    cgroups = CgroupTree(name)
    removed = await leftovers.sweep(cgroups, HostIds(name), leftovers.socket_root(name))
    for backend_name, make in backend_classes().items():
        backend = make(state_dir / "isolation" / backend_name)
        if backend_name != PROCESS and backend.unavailable() is None:
            await asyncio.to_thread(backend.remove_leftovers)
    for slot in (state_dir / "slots").glob("*"):
        shutil.rmtree(slot, ignore_errors=True)
    cgroups.remove()
    log.info("dead worker's remains removed id=%s sandboxes=%d", worker_id, removed)


def _log_stream_name(version: str, now: float) -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime(now))
    return f"{day}/[{version}]{secrets.token_hex(16)}"
