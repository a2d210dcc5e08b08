"""Accounts as namespaces: every per-tenant record is kept under its account's qualified name.

A function is known across Lamina by its key, `ACCOUNT:NAME` (`FunctionKey`), never by its
name alone: the registry, the counting pools, the assignment table, the event queue and the
log store all index by it, so two accounts may both have a function `hello` and neither can
reach the other's. A colon never occurs in a function or log group name, so the key splits
back unambiguously.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

DEFAULT_ACCOUNT = "000000000000"

_SEPARATOR = ":"
_ACCOUNT = re.compile(r"^\d{12}$")


class TenancyError(ValueError):
    """A qualified name that is not `ACCOUNT:NAME` with a 12-digit account."""


def qualify(account_id: str, name: str) -> str:
    """`name` in `account_id`'s namespace."""
    return f"{account_id}{_SEPARATOR}{name}"


def split(qualified: str) -> tuple[str, str]:
    """The account and the name of a qualified name."""
    account_id, separator, name = qualified.partition(_SEPARATOR)
    if not separator or not _ACCOUNT.match(account_id):
        raise TenancyError(f"not a qualified name: {qualified!r}")
    return account_id, name


class FunctionKey(str):
    """A function's identity across accounts: `ACCOUNT:NAME`.

    A `str`, so every table keyed by function takes it unchanged; build one with `of`.
    """

    __slots__ = ()

    @classmethod
    def of(cls, account_id: str, name: str) -> FunctionKey:
        return cls(qualify(account_id, name))

    @property
    def account_id(self) -> str:
        return split(self)[0]

    @property
    def name(self) -> str:
        return split(self)[1]


def adopt_unqualified(
    db: sqlite3.Connection, columns: Iterable[tuple[str, str]], account_id: str
) -> None:
    """Qualify the bare names a database kept before accounts with `account_id`.

    `columns` are (table, column) pairs; a data directory of a single-account Lamina opens
    unchanged, its records belonging to the account it served.
    """
    prefix = qualify(account_id, "")
    for table, column in columns:
        db.execute(
            f"UPDATE {table} SET {column} = ? || {column} "
            f"WHERE instr({column}, '{_SEPARATOR}') = 0",
            (prefix,),
        )
