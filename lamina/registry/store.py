"""Functions and their settings, kept in SQLite inside the data directory.

Reads come from memory: the frontend consults the registry on every invoke, and in one
process the in-memory copy is exact because every write passes through here first.

Every row is keyed by the function's key (`ACCOUNT:NAME`, in the `name` column); a `Registry`
answers for one account (`for_account`), all of them sharing one database and one copy.
"""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
from pathlib import Path

from lamina.registry.model import FunctionConfig
from lamina.registry.versions import VersionStore, load_config
from lamina.tenancy import DEFAULT_ACCOUNT, FunctionKey, adopt_unqualified

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS functions (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    reserved_concurrency INTEGER
);
CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, tags TEXT NOT NULL);
"""


class RegistryError(Exception):
    """Base of the registry's errors."""


class FunctionExists(RegistryError):
    pass


class FunctionMissing(RegistryError):
    pass


class Registry:
    """The functions of one account (`account_id`); `for_account` gives another's."""

    def __init__(self, path: Path, account_id: str = DEFAULT_ACCOUNT) -> None:
        self.account_id = account_id
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # Rows written before functions were kept per account belong to the one served then.
        adopt_unqualified(self._db, [("functions", "name"), ("tags", "name")], account_id)
        self._functions: dict[FunctionKey, FunctionConfig] = {}
        self._reserved: dict[FunctionKey, int] = {}
        for key, config, reserved in self._db.execute("SELECT * FROM functions"):
            self._functions[FunctionKey(key)] = load_config(key, config)
            if reserved is not None:
                self._reserved[FunctionKey(key)] = reserved
        self._tags: dict[FunctionKey, dict[str, str]] = {
            FunctionKey(key): json.loads(tags)
            for key, tags in self._db.execute("SELECT * FROM tags")
        }
        self.versions = VersionStore(self._db, account_id)
        log.info("registry opened path=%s functions=%d", path, len(self._functions))

    def for_account(self, account_id: str) -> Registry:
        """The same registry, answering for `account_id`'s functions."""
        view = copy.copy(self)
        view.account_id = account_id
        view.versions = self.versions.for_account(account_id)
        return view

    def accounts(self) -> list[str]:
        """Every account that has a function."""
        return sorted({key.account_id for key in self._functions})

    def close(self) -> None:
        self._db.close()

    def _key(self, name: str) -> FunctionKey:
        return FunctionKey.of(self.account_id, name)

    def get(self, name: str) -> FunctionConfig | None:
        return self._functions.get(self._key(name))

    def require(self, name: str) -> FunctionConfig:
        config = self._functions.get(self._key(name))
        if config is None:
            raise FunctionMissing(name)
        return config

    def names(self) -> list[str]:
        return sorted(key.name for key in self._functions if key.account_id == self.account_id)

    def create(self, config: FunctionConfig) -> None:
        if config.key in self._functions:
            raise FunctionExists(config.name)
        self._db.execute(
            "INSERT INTO functions (name, config) VALUES (?, ?)",
            (config.key, json.dumps(config.to_dict())),
        )
        self._functions[config.key] = config

    def put(self, config: FunctionConfig) -> None:
        """Replace the stored configuration of an existing function."""
        self.for_account(config.account_id).require(config.name)
        self._db.execute(
            "UPDATE functions SET config = ? WHERE name = ?",
            (json.dumps(config.to_dict()), config.key),
        )
        self._functions[config.key] = config

    def delete(self, name: str) -> FunctionConfig:
        config = self.require(name)
        key = config.key
        self._db.execute("DELETE FROM functions WHERE name = ?", (key,))
        self._db.execute("DELETE FROM tags WHERE name = ?", (key,))
        del self._functions[key]
        self._reserved.pop(key, None)
        self._tags.pop(key, None)
        self.versions.forget(name)
        return config

    def reserved(self) -> dict[str, int]:
        """Reserved concurrency of this account's functions, by name."""
        return {k.name: v for k, v in self._reserved.items() if k.account_id == self.account_id}

    def set_reserved(self, name: str, value: int | None) -> None:
        key = self.require(name).key
        self._db.execute(
            "UPDATE functions SET reserved_concurrency = ? WHERE name = ?", (value, key)
        )
        if value is None:
            self._reserved.pop(key, None)
        else:
            self._reserved[key] = value

    def tags(self, name: str) -> dict[str, str]:
        return dict(self._tags.get(self._key(name), {}))

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        key = self.require(name).key
        self._db.execute(
            "INSERT OR REPLACE INTO tags (name, tags) VALUES (?, ?)", (key, json.dumps(tags))
        )
        self._tags[key] = dict(tags)

    def code_in_use(self) -> set[str]:
        latest = {config.code_sha256 for config in self._functions.values()}
        return latest | self.versions.code_in_use()
