"""The `lamina` command."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import click

from lamina import eventloop, fleet_cli, launcher
from lamina.auth.commands import accounts, default_key_allowed, keys
from lamina.auth.platform import TOKEN_ENV, TOKEN_FILE
from lamina.eventqueue.commands import events
from lamina.logs import tail
from lamina.sandbox import backend
from lamina.sandbox.pool import DEFAULT_SIZE as DEFAULT_POOL_SIZE
from lamina.worker import server
from lamina.worker.agent import WorkerIdentity

# Blank sandboxes each worker keeps per interpreter and /tmp size in demand.
_ISOLATION = click.option(
    "--isolation",
    type=click.Choice(backend.NAMES),
    default=None,
    help="Isolation backend of sandboxes [default: namespace]; a function's "
    "`lamina:isolation` tag chooses another. `process` runs no isolation at all.",
)
_SANDBOX_POOL = click.option(
    "--sandbox-pool",
    type=click.IntRange(min=0),
    default=DEFAULT_POOL_SIZE,
    show_default=True,
    help="Blank sandboxes a worker keeps started per runtime in use, for fast cold starts.",
)


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group()
@click.version_option(package_name="lamina")
def main() -> None:
    """Lamina, a self-hosted serverless platform that speaks the AWS Lambda API."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9000, show_default=True, help="Port of the Lambda API.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".lamina"),
    show_default=True,
    help="Where functions, code and logs are kept.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    help="Worker processes to start here; with 0, workers join with `lamina worker --join`.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=0.5),
    default=launcher.LEASE_S,
    show_default=True,
    help="Seconds a worker stays a member without renewing.",
)
@click.option("--zones", default="a", show_default=True, help="Comma-separated zone labels.")
@click.option("--region", default="us-east-1", show_default=True)
@click.option(
    "--concurrency-limit",
    default=1000,
    show_default=True,
    help="Concurrent executions allowed to the account.",
)
@click.option(
    "--keep-alive",
    default=600.0,
    show_default=True,
    help="Seconds an idle sandbox is kept warm (the fixed policy; the hybrid's fallback).",
)
@click.option(
    "--keep-alive-policy",
    type=click.Choice(["fixed", "hybrid"]),
    default="fixed",
    show_default=True,
    help="fixed: --keep-alive for every sandbox; hybrid: learn each function's idle times.",
)
@click.option(
    "--scaling-budget",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="New sandboxes each function may start per 10 seconds.",
)
@click.option(
    "--worker-memory",
    type=click.IntRange(min=128),
    default=None,
    help="Memory in MB each worker offers to sandboxes [default: host memory / workers].",
)
@click.option(
    "--event-concurrency",
    default=16,
    show_default=True,
    help="Asynchronous events run at the same time.",
)
# Shrinks retry delays and back-offs so tests of a real platform need not wait minutes.
@click.option("--event-retry-scale", default=1.0, hidden=True)
@click.option("--example/--no-example", default=False, help="Deploy the `hello` function.")
@click.option(
    "--account",
    default="000000000000",
    show_default=True,
    help="Account that functions kept before accounts existed belong to; the example's.",
)
@click.option(
    "--default-key/--no-default-key",
    default=None,
    help="Accept the development key test/test [default: only on a loopback --host].",
)
@_ISOLATION
@click.option("--log-level", default="info", show_default=True)
@_SANDBOX_POOL
def up(
    host: str,
    port: int,
    data_dir: Path,
    workers: int,
    zones: str,
    region: str,
    concurrency_limit: int,
    keep_alive: float,
    keep_alive_policy: str,
    scaling_budget: int,
    worker_memory: int | None,
    event_concurrency: int,
    event_retry_scale: float,
    example: bool,
    account: str,
    default_key: bool | None,
    isolation: str | None,
    log_level: str,
    lease: float,
    sandbox_pool: int,
) -> None:
    """Run every part of Lamina on this machine, in the foreground."""
    _logging(log_level)
    allow_default_key = default_key_allowed(host, default_key)
    if workers < 0:
        raise click.BadParameter("cannot be negative", param_hint="--workers")
    if event_concurrency < 1:
        raise click.BadParameter("at least 1", param_hint="--event-concurrency")
    settings = launcher.Settings(
        host=host,
        port=port,
        data_dir=data_dir,
        workers=workers,
        zones=tuple(z.strip() for z in zones.split(",") if z.strip()) or ("a",),
        region=region,
        account_concurrency=concurrency_limit,
        keep_alive_s=keep_alive,
        keep_alive_policy=keep_alive_policy,
        scaling_budget=scaling_budget,
        worker_memory_mb=worker_memory,
        event_concurrency=event_concurrency,
        event_retry_scale=event_retry_scale,
        example=example,
        lease_s=lease,
        account_id=account,
        default_key=allow_default_key,
        isolation=isolation,
        sandbox_pool=sandbox_pool,
    )
    eventloop.run(launcher.run(settings))


@main.group(invoke_without_command=True)
@click.option("--id", "worker_id", default=socket.gethostname, help="[default: host name]")
@click.option("--zone", default="a", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--advertise-host", default=None, help="Address the frontend calls [default: --host]."
)
@click.option("--port", default=0, show_default=True)
@click.option(
    "--memory-mb",
    type=click.IntRange(min=128),
    default=None,
    help="Memory offered to sandboxes [default: the host's memory].",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where code and logs are kept [default: .lamina-worker/ID].",
)
@click.option("--join", "--control-url", "join_url", help="URL of the frontend to join.")
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    help=f"The platform token (DATA_DIR/{TOKEN_FILE} of the frontend) [env: {TOKEN_ENV}].",
)
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--log-store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The function log store to write to (default: logs.db in the state directory).",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also serve the worker API on this Unix socket, for a frontend on the same host.",
)
@_ISOLATION
@_SANDBOX_POOL
@click.pass_context
def worker(
    ctx: click.Context,
    worker_id: str,
    zone: str,
    host: str,
    advertise_host: str | None,
    port: int,
    memory_mb: int | None,
    state_dir: Path | None,
    join_url: str | None,
    token: str | None,
    region: str,
    log_level: str,
    log_store: Path | None,
    socket_path: Path | None,
    isolation: str | None,
    sandbox_pool: int,
) -> None:
    """Run a worker that joins the fleet at --join URL, or manage workers (drain, list)."""
    if ctx.invoked_subcommand is not None:
        return
    if join_url is None:
        raise click.UsageError("--join URL (the frontend to join) is required to run a worker")
    if not token:
        raise click.UsageError(f"--token (or {TOKEN_ENV}) is required to join the fleet")
    _logging(log_level)
    identity = WorkerIdentity(worker_id, zone, memory_mb or launcher.memory_total_mb(), region)
    state_dir = state_dir or Path(".lamina-worker") / worker_id
    state_dir.mkdir(parents=True, exist_ok=True)
    eventloop.run(
        server.serve(
            identity,
            host,
            port,
            state_dir.resolve(),
            join_url.rstrip("/"),
            advertise_host,
            log_store,
            token,
            socket_path.resolve() if socket_path is not None else None,
            isolation,
            sandbox_pool,
        )
    )


worker.add_command(fleet_cli.drain)
worker.add_command(fleet_cli.list_workers)
main.add_command(fleet_cli.placement)


@main.command()
@click.argument("function_name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--endpoint", default="http://127.0.0.1:9000", show_default=True)
def logs(function_name: str, follow: bool, endpoint: str) -> None:
    """Print the log events of a function (its group /aws/lambda/FUNCTION_NAME)."""
    try:
        tail.tail(endpoint, function_name, follow, click.echo)
    except tail.LogsUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


main.add_command(events)
main.add_command(accounts)
main.add_command(keys)
