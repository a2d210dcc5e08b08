"""Accounts as namespaces: keys, per-account stores, and data directories kept before accounts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lamina.clock import FakeClock
from lamina.eventqueue import EventStore
from lamina.logs.store import GroupMissing, LogStore
from lamina.registry.model import FunctionConfig
from lamina.registry.store import Registry
from lamina.tenancy import FunctionKey, TenancyError

A, B = "111111111111", "222222222222"


def config(name: str, account: str, runtime: str = "python3.11") -> FunctionConfig:
    return FunctionConfig(
        name=name, runtime=runtime, handler="index.handler", role="r",
        code_sha256="00" * 32, code_size=1, revision_id="r1", last_modified="",
        account_id=account,
    )  # fmt: skip


def test_a_function_key_splits_back_into_its_account_and_name() -> None:
    key = FunctionKey.of(A, "hello")

    assert (key, key.account_id, key.name) == (f"{A}:hello", A, "hello")
    with pytest.raises(TenancyError):
        _ = FunctionKey("hello").account_id


def test_two_accounts_keep_functions_of_the_same_name_apart(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db", A)
    registry.create(config("f", A))
    registry.for_account(B).create(config("f", B, runtime="python3.12"))
    registry.for_account(B).set_reserved("f", 5)

    reopened = Registry(tmp_path / "r.db", A)

    assert reopened.require("f").runtime == "python3.11"
    assert reopened.for_account(B).require("f").runtime == "python3.12"
    assert reopened.reserved() == {} and reopened.for_account(B).reserved() == {"f": 5}
    assert reopened.accounts() == [A, B]
    assert reopened.for_account("333333333333").names() == []


def test_versions_and_aliases_of_one_account_are_not_seen_by_another(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db", A)
    registry.create(config("f", A))
    registry.versions.put_version(config("f", A).replace(version="1"))

    other = registry.for_account(B).versions

    assert other.versions("f") == [] and other.next_number("f") == 1
    assert [c.version for c in registry.versions.versions("f")] == ["1"]


def test_a_registry_kept_before_accounts_opens_with_its_functions_in_the_served_account(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.db"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE functions (name TEXT PRIMARY KEY, config TEXT NOT NULL, "
            "reserved_concurrency INTEGER);"
            "CREATE TABLE tags (name TEXT PRIMARY KEY, tags TEXT NOT NULL);"
            "CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, "
            "config TEXT NOT NULL, PRIMARY KEY (name, version));"
        )
        old = config("old", A).to_dict()
        del old["account_id"]
        db.execute("INSERT INTO functions VALUES ('old', ?, 7)", (json.dumps(old),))
        db.execute("INSERT INTO tags VALUES ('old', '{\"team\": \"x\"}')")
        db.execute("INSERT INTO versions VALUES ('old', 1, ?)", (json.dumps(old),))

    registry = Registry(path, A)

    assert registry.require("old").key == FunctionKey.of(A, "old")
    assert registry.reserved() == {"old": 7}
    assert registry.tags("old") == {"team": "x"}
    assert registry.versions.version("old", "1") is not None
    assert registry.for_account(B).get("old") is None


def test_log_groups_are_per_account_and_old_groups_join_the_served_account(
    tmp_path: Path,
) -> None:
    path = tmp_path / "logs.db"
    LogStore(path, FakeClock(), account_id=A).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO groups (name, created) VALUES ('/aws/lambda/old', 0)")
    store = LogStore(path, FakeClock(), account_id=A)
    store.for_account(B).create_stream("/aws/lambda/new", "s")
    store.for_account(B).append("/aws/lambda/new", "s", [(1, "secret")])

    assert [g.name for g in store.groups()] == ["/aws/lambda/old"]
    assert [g.name for g in store.for_account(B).groups("/aws")] == ["/aws/lambda/new"]
    with pytest.raises(GroupMissing):
        list(store.scan("/aws/lambda/new", None, None, None, None, None))


def test_events_kept_before_accounts_belong_to_the_served_account(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    EventStore(path, A).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO events (request_id, function, function_arn, invoked_arn, payload, "
            "trace_id, enqueued_at, next_at, state, condition, failed_at) "
            "VALUES ('r', 'old', 'arn', 'arn', x'7b7d', '', 0, 0, 'failed', 'RetriesExhausted', 0)"
        )

    store = EventStore(path, A)

    assert [kept.event.function for kept in store.failed(FunctionKey.of(A, "old"))] == [
        FunctionKey.of(A, "old")
    ]
