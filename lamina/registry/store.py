"""Functions and their settings, kept in SQLite inside the data directory.

Reads come from memory: the frontend consults the registry on every invoke, and in one
process the in-memory copy is exact because every write passes through here first.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

from lamina.registry.model import FunctionConfig
from lamina.registry.versions import VersionStore

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
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._functions: dict[str, FunctionConfig] = {}
        self._reserved: dict[str, int] = {}
        for name, config, reserved in self._db.execute("SELECT * FROM functions"):
            self._functions[name] = FunctionConfig.from_dict(json.loads(config))
            if reserved is not None:
                self._reserved[name] = reserved
        self._tags: dict[str, dict[str, str]] = {
            name: json.loads(tags) for name, tags in self._db.execute("SELECT * FROM tags")
        }
        self.versions = VersionStore(self._db)
        log.info("registry opened path=%s functions=%d", path, len(self._functions))

    def close(self) -> None:
        self._db.close()

    def get(self, name: str) -> FunctionConfig | None:
        return self._functions.get(name)

    def require(self, name: str) -> FunctionConfig:
        config = self._functions.get(name)
        if config is None:
            raise FunctionMissing(name)
        return config

    def names(self) -> list[str]:
        return sorted(self._functions)

    def create(self, config: FunctionConfig) -> None:
        if config.name in self._functions:
            raise FunctionExists(config.name)
        self._db.execute(
            "INSERT INTO functions (name, config) VALUES (?, ?)",
            (config.name, json.dumps(config.to_dict())),
        )
        self._functions[config.name] = config

    def put(self, config: FunctionConfig) -> None:
        """Replace the stored configuration of an existing function."""
        self.require(config.name)
        self._db.execute(
            "UPDATE functions SET config = ? WHERE name = ?",
            (json.dumps(config.to_dict()), config.name),
        )
        self._functions[config.name] = config

    def delete(self, name: str) -> FunctionConfig:
        config = self.require(name)
        self._db.execute("DELETE FROM functions WHERE name = ?", (name,))
        self._db.execute("DELETE FROM tags WHERE name = ?", (name,))
        del self._functions[name]
        self._reserved.pop(name, None)
        self._tags.pop(name, None)
        self.versions.forget(name)
        return config

    def reserved(self) -> dict[str, int]:
        return dict(self._reserved)

    def set_reserved(self, name: str, value: int | None) -> None:
        self.require(name)
        self._db.execute(
            "UPDATE functions SET reserved_concurrency = ? WHERE name = ?", (value, name)
        )
        if value is None:
            self._reserved.pop(name, None)
        else:
            self._reserved[name] = value

    def tags(self, name: str) -> dict[str, str]:
        return dict(self._tags.get(name, {}))

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        self.require(name)
        self._db.execute(
            "INSERT OR REPLACE INTO tags (name, tags) VALUES (?, ?)", (name, json.dumps(tags))
        )
        self._tags[name] = dict(tags)

    def code_in_use(self) -> set[str]:
        latest = {config.code_sha256 for config in self._functions.values()}
        return latest | self.versions.code_in_use()
