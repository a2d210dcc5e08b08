"""Published versions, aliases and the configuration that invokes of $LATEST run, in SQLite.

A published version is an immutable copy of $LATEST under a number that is never reused, even
after that version is deleted. An alias names a version, and optionally a second one with a
share of the invokes. While an update of $LATEST is in progress, its invokes keep running the
configuration that was ready before (`serving`); outside an update there is none and $LATEST
itself is served.

Rows are keyed by the function's key (`ACCOUNT:NAME`, in the `name` column); a store answers
for one account (`for_account`), all of them sharing one database and one copy.
"""

from __future__ import annotations

import copy
import json
import sqlite3

from lamina.registry.model import Alias, FunctionConfig, ProvisionedConcurrency
from lamina.tenancy import FunctionKey, adopt_unqualified

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS version_counters (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS serving (name TEXT PRIMARY KEY, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS provisioned (
    name TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (name, qualifier)
);
"""


_TABLES = ("versions", "aliases", "version_counters", "serving", "provisioned")


def load_config(key: str, text: str) -> FunctionConfig:
    """A stored configuration; one stored before accounts takes the account of its key."""
    doc = json.loads(text)
    doc.setdefault("account_id", FunctionKey(key).account_id)
    return FunctionConfig.from_dict(doc)


class VersionStore:
    """Versions, aliases and serving configurations of one account's functions, in memory."""

    def __init__(self, db: sqlite3.Connection, account_id: str) -> None:
        self.account_id = account_id
        self._db = db
        self._db.executescript(_SCHEMA)
        adopt_unqualified(self._db, [(table, "name") for table in _TABLES], account_id)
        self._versions: dict[str, dict[int, FunctionConfig]] = {}
        self._aliases: dict[str, dict[str, Alias]] = {}
        self._last: dict[str, int] = dict(self._db.execute("SELECT * FROM version_counters"))
        self._serving: dict[str, FunctionConfig] = {}
        for key, number, config in self._db.execute("SELECT * FROM versions"):
            self._versions.setdefault(key, {})[number] = load_config(key, config)
        for key, alias, doc in self._db.execute("SELECT * FROM aliases"):
            self._aliases.setdefault(key, {})[alias] = Alias.from_dict(json.loads(doc))
        for key, config in self._db.execute("SELECT * FROM serving"):
            self._serving[key] = load_config(key, config)
        self._provisioned: dict[str, dict[str, ProvisionedConcurrency]] = {}
        for key, qualifier, doc in self._db.execute("SELECT * FROM provisioned"):
            entry = ProvisionedConcurrency.from_dict(json.loads(doc))
            self._provisioned.setdefault(key, {})[qualifier] = entry

    def for_account(self, account_id: str) -> VersionStore:
        """The same store, answering for `account_id`'s functions."""
        view = copy.copy(self)
        view.account_id = account_id
        return view

    def _key(self, name: str) -> FunctionKey:
        return FunctionKey.of(self.account_id, name)

    # Versions

    def versions(self, name: str) -> list[FunctionConfig]:
        """The published versions of `name`, oldest first."""
        published = self._versions.get(self._key(name), {})
        return [published[number] for number in sorted(published)]

    def version(self, name: str, version: str) -> FunctionConfig | None:
        if not version.isdigit():
            return None
        return self._versions.get(self._key(name), {}).get(int(version))

    def next_number(self, name: str) -> int:
        return self._last.get(self._key(name), 0) + 1

    def put_version(self, config: FunctionConfig) -> None:
        """Store a newly published version, or the same version after its activation."""
        number = int(config.version)
        key = config.key
        self._db.execute(
            "INSERT OR REPLACE INTO versions (name, version, config) VALUES (?, ?, ?)",
            (key, number, json.dumps(config.to_dict())),
        )
        if number > self._last.get(key, 0):
            self._db.execute(
                "INSERT OR REPLACE INTO version_counters (name, last) VALUES (?, ?)",
                (key, number),
            )
            self._last[key] = number
        self._versions.setdefault(key, {})[number] = config

    def delete_version(self, name: str, version: str) -> FunctionConfig | None:
        config = self.version(name, version)
        if config is None:
            return None
        key = self._key(name)
        self._db.execute(
            "DELETE FROM versions WHERE name = ? AND version = ?", (key, int(version))
        )
        del self._versions[key][int(version)]
        return config

    # Aliases

    def aliases(self, name: str) -> list[Alias]:
        named = self._aliases.get(self._key(name), {})
        return [named[alias] for alias in sorted(named)]

    def alias(self, name: str, alias: str) -> Alias | None:
        return self._aliases.get(self._key(name), {}).get(alias)

    def put_alias(self, name: str, alias: Alias) -> None:
        key = self._key(name)
        self._db.execute(
            "INSERT OR REPLACE INTO aliases (name, alias, doc) VALUES (?, ?, ?)",
            (key, alias.name, json.dumps(alias.to_dict())),
        )
        self._aliases.setdefault(key, {})[alias.name] = alias

    def delete_alias(self, name: str, alias: str) -> None:
        key = self._key(name)
        self._db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (key, alias))
        self._aliases.get(key, {}).pop(alias, None)

    # What invokes of $LATEST run while it is being updated

    def serving(self, name: str) -> FunctionConfig | None:
        return self._serving.get(self._key(name))

    def set_serving(self, config: FunctionConfig | None, name: str) -> None:
        """Keep `config` serving $LATEST of `name` during an update; None when it is over."""
        key = self._key(name)
        if config is None:
            self._db.execute("DELETE FROM serving WHERE name = ?", (key,))
            self._serving.pop(key, None)
            return
        self._db.execute(
            "INSERT OR REPLACE INTO serving (name, config) VALUES (?, ?)",
            (key, json.dumps(config.to_dict())),
        )
        self._serving[key] = config

    # Provisioned concurrency, per published version or alias

    def provisioned(self, name: str) -> list[ProvisionedConcurrency]:
        entries = self._provisioned.get(self._key(name), {})
        return [entries[qualifier] for qualifier in sorted(entries)]

    def provisioned_for(self, name: str, qualifier: str) -> ProvisionedConcurrency | None:
        return self._provisioned.get(self._key(name), {}).get(qualifier)

    def put_provisioned(self, name: str, entry: ProvisionedConcurrency) -> None:
        key = self._key(name)
        self._db.execute(
            "INSERT OR REPLACE INTO provisioned (name, qualifier, doc) VALUES (?, ?, ?)",
            (key, entry.qualifier, json.dumps(entry.to_dict())),
        )
        self._provisioned.setdefault(key, {})[entry.qualifier] = entry

    def delete_provisioned(self, name: str, qualifier: str) -> None:
        key = self._key(name)
        self._db.execute(
            "DELETE FROM provisioned WHERE name = ? AND qualifier = ?", (key, qualifier)
        )
        self._provisioned.get(key, {}).pop(qualifier, None)

    # The whole function

    def forget(self, name: str) -> None:
        """Drop everything of a deleted function; its version numbers start again at 1."""
        key = self._key(name)
        for table in _TABLES:
            self._db.execute(f"DELETE FROM {table} WHERE name = ?", (key,))
        for kept in (self._versions, self._aliases, self._last, self._serving, self._provisioned):
            kept.pop(key, None)

    def code_in_use(self) -> set[str]:
        held = [*self._serving.values()]
        held += [config for published in self._versions.values() for config in published.values()]
        return {config.code_sha256 for config in held}
