"""Operator commands about the fleet: `lamina worker drain|list`, `lamina placement explain`.

They talk to a running frontend over its /_lamina endpoints, with the platform token when it
is in the environment (LAMINA_PLATFORM_TOKEN), or signed with the caller's AWS credentials,
which must be an admin key.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Any

import click

from lamina.auth.platform import TOKEN_ENV, TOKEN_HEADER
from lamina.auth.signing import caller_credentials, signed_headers

DEFAULT_URL = "http://127.0.0.1:9000"
# How often `drain --wait` looks whether the worker is empty yet.
DRAIN_POLL_S = 0.5

url_option = click.option(
    "--url",
    envvar="LAMINA_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The frontend of the running Lamina (or set LAMINA_URL).",
)


def _call(method: str, url: str) -> Any:
    request = urllib.request.Request(url, method=method, headers=_credentials(method, url))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        # Lamina's errors carry Lambda's error document, whose message key varies in case.
        doc = json.loads(exc.read() or b"{}")
        detail = doc.get("Message") or doc.get("message") or exc.reason
        raise click.ClickException(f"{method} {url}: {exc.code} {detail}") from exc
    except urllib.error.URLError as exc:
        raise click.ClickException(f"cannot reach Lamina at {url}: {exc.reason}") from exc


def _credentials(method: str, url: str) -> dict[str, str]:
    token = os.environ.get(TOKEN_ENV)
    if token:
        return {TOKEN_HEADER: token}
    credentials, region = caller_credentials()
    return signed_headers(method, url, b"", credentials, region)


@click.command()
@click.argument("worker_id")
@url_option
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until empty.")
def drain(worker_id: str, url: str, wait: bool) -> None:
    """Stop placing sandboxes on WORKER_ID; running invokes finish, idle sandboxes go."""
    worker = _call("POST", f"{url}/_lamina/v1/workers/{worker_id}/drain")
    click.echo(f"{worker_id}: draining, {worker['sandboxes']} sandboxes left")
    while wait and worker["status"] != "drained":
        time.sleep(DRAIN_POLL_S)
        members = _call("GET", f"{url}/_lamina/v1/workers")["workers"]
        found = [w for w in members if w["worker_id"] == worker_id]
        if not found:
            raise click.ClickException(f"{worker_id} left the fleet before it was drained")
        worker = found[0]
    if worker["status"] == "drained":
        click.echo(f"{worker_id}: drained, no sandboxes left")


@click.command(name="list")
@url_option
def list_workers(url: str) -> None:
    """Show the fleet: zone, status, packing density and idle memory of each worker."""
    report = _call("GET", f"{url}/_lamina/v1/workers")
    click.echo(f"{'WORKER':<16}{'ZONE':<8}{'STATUS':<11}{'SANDBOXES':>10}{'BUSY':>6}"
               f"{'RESERVED MB':>13}{'IDLE MB':>9}{'DENSITY':>9}")  # fmt: skip
    for w in report["workers"]:
        click.echo(
            f"{w['worker_id']:<16}{w['zone']:<8}{w['status']:<11}{w['sandboxes']:>10}"
            f"{w['busy']:>6}{w['memory_reserved_mb']:>6}/{w['memory_capacity_mb']:<6}"
            f"{w['memory_idle_mb']:>9}{w['packing_density']:>9.1%}"
        )
    click.echo(
        f"fleet: {report['memory_reserved_mb']}/{report['memory_capacity_mb']} MB reserved"
        f" ({report['packing_density']:.1%}), {report['memory_idle_mb']} MB idle"
    )


@click.group()
def placement() -> None:
    """Inspect placement."""


@placement.command()
@url_option
@click.option("--last", default=20, show_default=True, type=click.IntRange(min=1))
def explain(url: str, last: int) -> None:
    """Show the last placement decisions and why each worker was or was not chosen."""
    decisions = _call("GET", f"{url}/_lamina/v1/placement/decisions")["decisions"]
    if not decisions:
        click.echo("no placement decisions yet")
    for d in decisions[-last:]:
        stamp = time.strftime("%H:%M:%S", time.gmtime(d["time"]))
        click.echo(f"{stamp} {d['function']} ({d['memory_mb']} MB): {d['explanation']}")
