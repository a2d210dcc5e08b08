"""Published versions, aliases and the configuration that invokes of $LATEST run, in SQLite.

A published version is an immutable copy of $LATEST under a number that is never reused, even
after that version is deleted. An alias names a version, and optionally a second one with a
share of the invokes. While an update of $LATEST is in progress, its invokes keep running the
configuration that was ready before (`serving`); outside an update there is none and $LATEST
itself is served.
"""

from __future__ import annotations

import json
import sqlite3

from lamina.registry.model import Alias, FunctionConfig, ProvisionedConcurrency

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


class VersionStore:
    """Versions, aliases and serving configurations of every function, read from memory."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.executescript(_SCHEMA)
        self._versions: dict[str, dict[int, FunctionConfig]] = {}
        self._aliases: dict[str, dict[str, Alias]] = {}
        self._last: dict[str, int] = dict(self._db.execute("SELECT * FROM version_counters"))
        self._serving: dict[str, FunctionConfig] = {}
        for name, number, config in self._db.execute("SELECT * FROM versions"):
            doc = FunctionConfig.from_dict(json.loads(config))
            self._versions.setdefault(name, {})[number] = doc
        for name, alias, doc in self._db.execute("SELECT * FROM aliases"):
            self._aliases.setdefault(name, {})[alias] = Alias.from_dict(json.loads(doc))
        for name, config in self._db.execute("SELECT * FROM serving"):
            self._serving[name] = FunctionConfig.from_dict(json.loads(config))
        self._provisioned: dict[str, dict[str, ProvisionedConcurrency]] = {}
        for name, qualifier, doc in self._db.execute("SELECT * FROM provisioned"):
            entry = ProvisionedConcurrency.from_dict(json.loads(doc))
            self._provisioned.setdefault(name, {})[qualifier] = entry

    # Versions

    def versions(self, name: str) -> list[FunctionConfig]:
        """The published versions of `name`, oldest first."""
        published = self._versions.get(name, {})
        return [published[number] for number in sorted(published)]

    def version(self, name: str, version: str) -> FunctionConfig | None:
        if not version.isdigit():
            return None
        return self._versions.get(name, {}).get(int(version))

    def next_number(self, name: str) -> int:
        return self._last.get(name, 0) + 1

    def put_version(self, config: FunctionConfig) -> None:
        """Store a newly published version, or the same version after its activation."""
        number = int(config.version)
        self._db.execute(
            "INSERT OR REPLACE INTO versions (name, version, config) VALUES (?, ?, ?)",
            (config.name, number, json.dumps(config.to_dict())),
        )
        if number > self._last.get(config.name, 0):
            self._db.execute(
                "INSERT OR REPLACE INTO version_counters (name, last) VALUES (?, ?)",
                (config.name, number),
            )
            self._last[config.name] = number
        self._versions.setdefault(config.name, {})[number] = config

    def delete_version(self, name: str, version: str) -> FunctionConfig | None:
        config = self.version(name, version)
        if config is None:
            return None
        self._db.execute(
            "DELETE FROM versions WHERE name = ? AND version = ?", (name, int(version))
        )
        del self._versions[name][int(version)]
        return config

    # Aliases

    def aliases(self, name: str) -> list[Alias]:
        named = self._aliases.get(name, {})
        return [named[alias] for alias in sorted(named)]

    def alias(self, name: str, alias: str) -> Alias | None:
        return self._aliases.get(name, {}).get(alias)

    def put_alias(self, name: str, alias: Alias) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO aliases (name, alias, doc) VALUES (?, ?, ?)",
            (name, alias.name, json.dumps(alias.to_dict())),
        )
        self._aliases.setdefault(name, {})[alias.name] = alias

    def delete_alias(self, name: str, alias: str) -> None:
        self._db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
        self._aliases.get(name, {}).pop(alias, None)

    # What invokes of $LATEST run while it is being updated

    def serving(self, name: str) -> FunctionConfig | None:
        return self._serving.get(name)

    def set_serving(self, config: FunctionConfig | None, name: str) -> None:
        """Keep `config` serving $LATEST of `name` during an update; None when it is over."""
        if config is None:
            self._db.execute("DELETE FROM serving WHERE name = ?", (name,))
            self._serving.pop(name, None)
            return
        self._db.execute(
            "INSERT OR REPLACE INTO serving (name, config) VALUES (?, ?)",
            (name, json.dumps(config.to_dict())),
        )
        self._serving[name] = config

    # Provisioned concurrency, per published version or alias

    def provisioned(self, name: str) -> list[ProvisionedConcurrency]:
        entries = self._provisioned.get(name, {})
        return [entries[qualifier] for qualifier in sorted(entries)]

    def provisioned_for(self, name: str, qualifier: str) -> ProvisionedConcurrency | None:
        return self._provisioned.get(name, {}).get(qualifier)

    def put_provisioned(self, name: str, entry: ProvisionedConcurrency) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO provisioned (name, qualifier, doc) VALUES (?, ?, ?)",
            (name, entry.qualifier, json.dumps(entry.to_dict())),
        )
        self._provisioned.setdefault(name, {})[entry.qualifier] = entry

    def delete_provisioned(self, name: str, qualifier: str) -> None:
        self._db.execute(
            "DELETE FROM provisioned WHERE name = ? AND qualifier = ?", (name, qualifier)
        )
        self._provisioned.get(name, {}).pop(qualifier, None)

    # The whole function

    def forget(self, name: str) -> None:
        """Drop everything of a deleted function; its version numbers start again at 1."""
        for table in ("versions", "aliases", "version_counters", "serving", "provisioned"):
            self._db.execute(f"DELETE FROM {table} WHERE name = ?", (name,))
        for kept in (self._versions, self._aliases, self._last, self._serving, self._provisioned):
            kept.pop(name, None)

    def code_in_use(self) -> set[str]:
        held = [*self._serving.values()]
        held += [config for published in self._versions.values() for config in published.values()]
        return {config.code_sha256 for config in held}
