"""`lamina up`: every part of Lamina on one machine, each worker in a process of its own.

The frontend, counting service, assignment and placement share this process; workers are
separate processes that register with the frontend as workers on other hosts (`lamina worker
--join`) do. The frontend calls the workers it started over HTTP on a Unix socket in their
state directory, since connecting there costs about half what loopback TCP does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import io
import json
import logging
import os
import signal
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from lamina.assignment import AssignmentService
from lamina.assignment.keepalive import policy_named
from lamina.auth import KeyStore, Verifier
from lamina.auth.platform import TOKEN_ENV, TOKEN_HEADER, PlatformAuth, platform_token
from lamina.auth.sessions import SessionAuthority, session_key
from lamina.auth.signing import signed_headers
from lamina.clock import SystemClock
from lamina.counting import CountingPools, CountingService
from lamina.counting.budget import ScalingBudget
from lamina.eventloop import LISTEN_BACKLOG
from lamina.eventqueue import EventQueue, EventStore, Poller
from lamina.eventqueue.policy import Timing
from lamina.frontend import lifecycle, provisioned
from lamina.frontend.app import build_app
from lamina.frontend.context import FrontendContext
from lamina.frontend.events import FrontendInvoker
from lamina.frontend.health import OwnWorkers
from lamina.frontend.shapes import Scope
from lamina.logs.store import LogStore
from lamina.orphans import die_with_parent
from lamina.placement.fleet import LEASE_S, Fleet
from lamina.registry.code import CodeStore
from lamina.registry.store import Registry
from lamina.sandbox.pool import DEFAULT_SIZE as DEFAULT_POOL_SIZE
from lamina.supervisor import Supervisor, stop_all
from lamina.worker.agent import remove_remains
from lamina.worker.client import WorkerClient

log = logging.getLogger(__name__)

EXAMPLE_DIR = Path(__file__).parent / "examples" / "hello"
WORKER_START_TIMEOUT_S = 30.0
# Workers started here listen on loopback only.
WORKER_HOST = "127.0.0.1"
# The size of a Unix socket's path on Linux (sun_path), its terminating NUL included.
UNIX_PATH_MAX = 108
# How long a stop waits for the asynchronous events being run to finish.
EVENT_DRAIN_S = 10.0
# How often lapsed membership leases are looked for: a small fraction of the lease.
MEMBERSHIP_SWEEP_S = 0.1


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = Path(".lamina")
    workers: int = 1
    zones: tuple[str, ...] = ("a",)
    region: str = "us-east-1"
    account_id: str = "000000000000"
    account_concurrency: int = 1000
    keep_alive_s: float = 600.0
    keep_alive_policy: str = "fixed"
    scaling_budget: int = 1000  # new sandboxes per function per 10 seconds
    worker_memory_mb: int | None = None
    event_concurrency: int = 16
    event_retry_scale: float = 1.0
    example: bool = False
    lease_s: float = LEASE_S
    # The development key `test` / `test` of the default account.
    default_key: bool = True
    # The workers' isolation backend; None for their default.
    isolation: str | None = None
    sandbox_pool: int = DEFAULT_POOL_SIZE


def memory_total_mb() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096


def _worker_session(connector: aiohttp.BaseConnector, token: str) -> aiohttp.ClientSession:
    # A fresh connection per call (the connector's force_close): connecting proves a worker is
    # reachable before an event is sent, and no pooled connection to a dead worker swallows one.
    # Workers answer only callers that send the platform token.
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        headers={TOKEN_HEADER: token},
    )


def _local_socket(state_dir: Path) -> Path | None:
    """Where a worker started here serves its API on a Unix socket; None when the path is too
    long for one (the worker is then called over loopback TCP only)."""
    path = state_dir / "api.sock"
    return path if len(os.fsencode(path)) < UNIX_PATH_MAX else None


class Platform:
    """Owns the processes and servers of one `lamina up`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        account = settings.account_id
        self.registry = Registry(self.data_dir / "registry.db", account)
        self.clock = SystemClock()
        self.fleet = Fleet(self.clock, settings.lease_s, self._connect)
        self.pools = CountingPools(
            lambda: CountingService(settings.account_concurrency, clock=self.clock)
        )
        self.assignment = AssignmentService(
            self.fleet,
            self.clock,
            policy=policy_named(settings.keep_alive_policy, settings.keep_alive_s),
            budget=ScalingBudget(settings.scaling_budget, clock=self.clock),
        )
        self.events = EventQueue(EventStore(self.data_dir / "events.db", account), self.clock)
        self.keys = KeyStore(self.data_dir)
        self.keys.ensure_default(settings.default_key)
        self.token = platform_token(self.data_dir)
        # A function's credentials are good while its sandbox is in the assignment table.
        sessions = SessionAuthority(
            session_key(self.token), self.clock, alive=self.assignment.has_sandbox
        )
        self.url = f"http://{settings.host}:{settings.port}"
        self.ctx = FrontendContext(
            scope=Scope(settings.region, settings.account_id),
            registry=self.registry,
            code=CodeStore(self.data_dir / "code"),
            counting=self.pools.for_account(account),
            pools=self.pools,
            assignment=self.assignment,
            fleet=self.fleet,
            events=self.events,
            clock=self.clock,
            public_url=self.url,
            logs=LogStore(self.data_dir / "logs.db", self.clock, account_id=account),
            verifier=Verifier(self.keys.secret, self.clock, settings.region, sessions),
            platform=PlatformAuth(self.token, self.clock, self.keys.is_admin),
        )
        self.poller = Poller(
            self.events, FrontendInvoker(self.ctx), self.clock,
            max_in_flight=settings.event_concurrency,
            timing=Timing(settings.event_retry_scale),
        )  # fmt: skip
        self._ready = False
        # The workers this process started, each kept running by a supervisor of its own.
        self._supervisors: dict[str, Supervisor[asyncio.subprocess.Process]] = {}
        self._supervision: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        # The Unix sockets of the workers this process started, and a session for each.
        self._sockets: dict[str, Path] = {}
        self._local_sessions: dict[str, aiohttp.ClientSession] = {}
        self._runner: web.AppRunner | None = None
        self._poller_task: asyncio.Task[None] | None = None
        self._membership_task: asyncio.Task[None] | None = None

    def _connect(self, worker_id: str, url: str) -> WorkerClient:
        assert self._session is not None
        socket = self._sockets.get(worker_id)
        if socket is None or not url.startswith(f"http://{WORKER_HOST}:"):
            return WorkerClient(worker_id, url, self._session)
        session = self._local_sessions.get(worker_id)
        if session is None:
            connector = aiohttp.UnixConnector(str(socket), limit=0, force_close=True)
            session = self._local_sessions[worker_id] = _worker_session(connector, self.token)
        return WorkerClient(worker_id, url, session)

    async def start(self) -> None:
        for account in self.registry.accounts():
            reserved = self.registry.for_account(account).reserved()
            for name, value in reserved.items():
                self.pools.for_account(account).set_reserved(name, value)

        self._runner = web.AppRunner(
            build_app(self.ctx, self.own_workers), access_log=None, handle_signals=False
        )
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.settings.host, self.settings.port, backlog=LISTEN_BACKLOG
        )
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{self.settings.host}:{bound[1]}"
        self.ctx.public_url = self.url

        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self._session = _worker_session(connector, self.token)
        await self._start_workers()
        # Sweep often enough that no sandbox outlives its keep-alive by more than a quarter.
        sweep_s = max(0.05, min(5.0, self.settings.keep_alive_s / 4))
        self.ctx.spawn(self.assignment.run_reaper(sweep_s), name="keep-alive")
        # Kept apart from the other background work: a stop ends it before anything else.
        self._membership_task = asyncio.get_running_loop().create_task(
            self.assignment.run_membership(MEMBERSHIP_SWEEP_S), name="membership"
        )
        # The data directory is this process's alone: leases left by a killed one are void.
        released = self.events.store.release_all_leases()
        log.info("event queue opened leases released=%d", released)
        self._poller_task = asyncio.get_running_loop().create_task(self.poller.run())
        lifecycle.resume(self.ctx)
        provisioned.resume(self.ctx)
        if self.settings.example:
            await self._deploy_example()
        self._ready = True
        log.info("lamina ready url=%s workers=%d", self.url, self.settings.workers)

    def own_workers(self) -> OwnWorkers:
        """What the health answer tells of this platform and the workers it started."""
        return OwnWorkers(
            ready=self._ready,
            expected=tuple(self._supervisors),
            up=tuple(w for w, supervisor in self._supervisors.items() if supervisor.up),
        )

    async def _start_workers(self) -> None:
        for index in range(self.settings.workers):
            worker_id = f"worker-{index + 1}"
            command = self._worker_command(index, worker_id)
            self._supervisors[worker_id] = Supervisor(
                worker_id,
                functools.partial(self._spawn_worker, command),
                functools.partial(self._worker_ready, worker_id),
                self.clock,
            )
        await asyncio.gather(*(s.start() for s in self._supervisors.values()))
        # Started once all are up: a worker that cannot start stops `lamina up` at once.
        loop = asyncio.get_running_loop()
        self._supervision = [
            loop.create_task(s.run(), name=f"supervise {worker_id}")
            for worker_id, s in self._supervisors.items()
        ]

    def _worker_command(self, index: int, worker_id: str) -> list[str]:
        """The command line of one worker: the same at each of its starts, so a restarted
        worker finds its state directory and sweeps what its former self left there."""
        zone = self.settings.zones[index % len(self.settings.zones)]
        state_dir = self.data_dir / "workers" / worker_id
        memory_mb = self.settings.worker_memory_mb or memory_total_mb() // self.settings.workers
        command = [
            sys.executable, "-m", "lamina", "worker",
            "--id", worker_id,
            "--zone", zone,
            "--host", WORKER_HOST,
            "--port", "0",
            "--memory-mb", str(memory_mb),
            "--state-dir", str(state_dir),
            "--join", self.url,
            "--region", self.settings.region,
            "--log-store", str(self.data_dir / "logs.db"),
            "--sandbox-pool", str(self.settings.sandbox_pool),
        ]  # fmt: skip
        socket = _local_socket(state_dir)
        if socket is not None:
            command += ["--socket", str(socket)]
            self._sockets[worker_id] = socket
        if self.settings.isolation is not None:
            command += ["--isolation", self.settings.isolation]
        return command

    async def _spawn_worker(self, command: list[str]) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent(signal.SIGTERM),
            # In the environment, not the command line, where other users could read it.
            env={**os.environ, TOKEN_ENV: self.token},
        )

    @staticmethod
    async def _worker_ready(worker_id: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), WORKER_START_TIMEOUT_S)
        if not line:
            raise RuntimeError(f"{worker_id} exited before it was ready")
        # The worker prints its line once the fleet has admitted it.
        log.info("worker started %s", json.loads(line))

    async def _deploy_example(self) -> None:
        if self.registry.get("hello") is not None:
            return
        if not self.fleet.runtimes():
            log.warning("no worker has joined yet: the example function is not deployed")
            return
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.write(EXAMPLE_DIR / "lambda_function.py", "lambda_function.py")
        runtime = f"python3.{sys.version_info.minor}"
        if runtime not in self.fleet.runtimes():
            runtime = next(iter(self.fleet.runtimes()))
        body = {
            "FunctionName": "hello",
            "Runtime": runtime,
            "Handler": "lambda_function.lambda_handler",
            "Role": f"arn:aws:iam::{self.settings.account_id}:role/lamina-example",
            "Code": {"ZipFile": base64.b64encode(buffer.getvalue()).decode()},
        }
        credentials = self._any_key()
        if credentials is None:
            log.warning("example not deployed: account %s has no active key", self.ctx.scope)
            return
        url = f"{self.url}/2015-03-31/functions"
        data = json.dumps(body).encode()
        headers = signed_headers("POST", url, data, credentials, self.settings.region)
        assert self._session is not None
        async with self._session.post(url, data=data, headers=headers) as reply:
            if reply.status != 201:
                log.error("example function not created: %s", await reply.text())

    def _any_key(self) -> tuple[str, str] | None:
        for key in self.keys.keys(self.settings.account_id):
            found = self.keys.secret(key.access_key_id)
            if found is not None:
                return key.access_key_id, found[1]
        return None

    async def stop(self) -> None:
        self._ready = False
        # Before anything else: the workers about to be stopped must not be started again.
        await stop_all(self._supervision)
        # Once the API stops listening no worker can renew its lease: expiring them then would
        # fail the invokes still running, which a graceful stop lets finish.
        if self._membership_task is not None:
            self._membership_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._membership_task
        if self._poller_task is not None:
            self._poller_task.cancel()
        # Events still running after the grace keep their leases; the next start reruns them.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.poller.drain(), EVENT_DRAIN_S)
        await self.poller.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        # An interrupted create or update stays in progress and is resumed at the next start.
        await self.ctx.cancel()
        processes = [s.process for s in self._supervisors.values() if s.process is not None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                process.kill()
                await process.wait()
        # A worker that died (and was not started again) or had to be killed leaves what only
        # its next start would remove; one that stopped cleanly leaves nothing to find.
        for worker_id in self._supervisors:
            await remove_remains(worker_id, self.data_dir / "workers" / worker_id)
        if self._session is not None:
            await self._session.close()
        for session in self._local_sessions.values():
            await session.close()
        self.registry.close()
        self.events.close()
        self.ctx.logs.close()
        self.keys.close()
        log.info("lamina stopped")


async def run(settings: Settings) -> None:
    platform = Platform(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await platform.start()
        print(_banner(platform.url, settings.example), flush=True)
        await stop.wait()
    finally:
        await platform.stop()


def _aws_cli() -> str:
    """The AWS CLI beside this interpreter (the one `make run` installs), else the one on PATH."""
    beside = Path(sys.executable).parent / "aws"
    return str(beside) if beside.exists() else "aws"


def _banner(url: str, example: bool) -> str:
    lines = [f"Lamina is running at {url} (health: {url}/_lamina/health). Ctrl-C stops it."]
    if example:
        lines.append(
            "Invoke the example: AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "
            f"AWS_DEFAULT_REGION=us-east-1 {_aws_cli()} --endpoint-url {url} lambda invoke "
            '--function-name hello --payload \'{"name": "Lamina"}\' /dev/stdout'
        )
    return os.linesep.join(lines)
