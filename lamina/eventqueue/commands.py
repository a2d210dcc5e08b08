"""`lamina events`: the failed events kept in a data directory, listed and replayed.

Works on the data directory directly, with Lamina running or not: a running Lamina picks up
replayed events at its next poll.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from lamina.clock import SystemClock
from lamina.eventqueue.store import EventStore
from lamina.tenancy import DEFAULT_ACCOUNT, FunctionKey

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path(".lamina"),
    show_default=True,
    help="The data directory of the Lamina to look at.",
)

_ACCOUNT = click.option(
    "--account",
    default=DEFAULT_ACCOUNT,
    show_default=True,
    help="The account FUNCTION belongs to.",
)


def _store(data_dir: Path) -> EventStore:
    path = data_dir / "events.db"
    if not path.exists():
        raise click.ClickException(f"{data_dir} holds no event queue (no events.db)")
    return EventStore(path)


@click.group()
def events() -> None:
    """Asynchronous events that failed and were kept."""


@events.command()
@click.argument("function")
@_DATA_DIR
@_ACCOUNT
@click.option("--json", "as_json", is_flag=True, help="One JSON document per line.")
def failed(function: str, data_dir: Path, account: str, as_json: bool) -> None:
    """List the failed events of FUNCTION, oldest failure first."""
    store = _store(data_dir)
    try:
        kept = store.failed(FunctionKey.of(account, function))
    finally:
        store.close()
    for item in kept:
        event = item.event
        last = event.last
        doc = {
            "requestId": event.request_id,
            "function": function,
            "account": account,
            "condition": item.condition.value,
            "approximateInvokeCount": event.invokes,
            "failedAt": item.failed_at,
            "functionError": last.function_error if last else None,
            "payload": event.payload.decode("utf-8", errors="replace"),
        }
        if as_json:
            click.echo(json.dumps(doc))
        else:
            click.echo(
                f"{event.request_id}  {item.condition.value:<24} invokes={event.invokes}  "
                f"{doc['payload'][:60]}"
            )
    if not kept and not as_json:
        click.echo(f"no failed events for {function}")


@events.command()
@click.argument("function", required=False)
@_DATA_DIR
@_ACCOUNT
@click.option("--id", "request_ids", multiple=True, help="Only this request id (repeatable).")
def replay(
    function: str | None, data_dir: Path, account: str, request_ids: tuple[str, ...]
) -> None:
    """Queue failed events again (all, those of FUNCTION, or the given ids)."""
    key = None if function is None else FunctionKey.of(account, function)
    store = _store(data_dir)
    try:
        count = store.replay(SystemClock().time(), key, request_ids)
    finally:
        store.close()
    click.echo(f"replayed {count} event{'s' if count != 1 else ''}")
