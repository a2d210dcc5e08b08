"""`lamina accounts` and `lamina keys`: the admin commands, working on a data directory."""

from __future__ import annotations

import ipaddress
import json
import socket
from pathlib import Path

import click

from lamina.auth.errors import AccountError
from lamina.auth.keys import KeyStore

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".lamina"),
    show_default=True,
    help="The data directory of the Lamina to administer.",
)


def _store(data_dir: Path) -> KeyStore:
    return KeyStore(data_dir.resolve())


def _run(data_dir: Path, action: str, *args: str, **options: object) -> object:
    store = _store(data_dir)
    try:
        return getattr(store, action)(*args, **options)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


@click.group()
def accounts() -> None:
    """Accounts: each owns its functions and its access keys."""


@accounts.command("create")
@click.option("--id", "account_id", default=None, help="12 digits [default: random].")
@_DATA_DIR
def create_account(account_id: str | None, data_dir: Path) -> None:
    """Create an account and print its id."""
    click.echo(_run(data_dir, "create_account", *([account_id] if account_id else [])))


@accounts.command("list")
@_DATA_DIR
def list_accounts(data_dir: Path) -> None:
    """Print the account ids, one a line."""
    for account_id in _run(data_dir, "accounts"):  # type: ignore[attr-defined]
        click.echo(account_id)


@click.group()
def keys() -> None:
    """Access keys: the credentials requests are signed with."""


@keys.command("create")
@click.argument("account_id")
@click.option("--admin", is_flag=True, help="It may also use Lamina's own /_lamina endpoints.")
@_DATA_DIR
def create_key(account_id: str, admin: bool, data_dir: Path) -> None:
    """Create a key of ACCOUNT_ID and print it; the secret is shown this once."""
    key_id, secret = _run(data_dir, "create_key", account_id, admin=admin)  # type: ignore[misc]
    click.echo(
        json.dumps({"AccessKeyId": key_id, "SecretAccessKey": secret, "AccountId": account_id})
    )


@keys.command("list")
@click.argument("account_id", required=False)
@_DATA_DIR
def list_keys(account_id: str | None, data_dir: Path) -> None:
    """Print the keys (never their secrets), of one account or all."""
    for key in _run(data_dir, "keys", *([account_id] if account_id else [])):  # type: ignore[attr-defined]
        click.echo(f"{key.access_key_id}\t{key.account_id}\t{key.status}\t{key.created}")


@keys.command("disable")
@click.argument("access_key_id")
@_DATA_DIR
def disable_key(access_key_id: str, data_dir: Path) -> None:
    """Refuse requests signed with ACCESS_KEY_ID until it is enabled again."""
    _run(data_dir, "set_status", access_key_id, "Inactive")


@keys.command("enable")
@click.argument("access_key_id")
@_DATA_DIR
def enable_key(access_key_id: str, data_dir: Path) -> None:
    """Accept requests signed with ACCESS_KEY_ID again."""
    _run(data_dir, "set_status", access_key_id, "Active")


@keys.command("delete")
@click.argument("access_key_id")
@_DATA_DIR
def delete_key(access_key_id: str, data_dir: Path) -> None:
    """Delete ACCESS_KEY_ID for good."""
    _run(data_dir, "delete_key", access_key_id)


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def default_key_allowed(host: str, default_key: bool | None) -> bool:
    """Whether the development key is on: by default only on loopback; elsewhere, if asked."""
    if default_key is not None:
        return default_key
    if is_loopback(host):
        return True
    raise click.UsageError(
        f"{host} is not a loopback address and the development key test/test would let "
        "anyone in: pass --no-default-key and create keys with `lamina keys create`, or "
        "--default-key to keep it anyway"
    )
