"""Accounts and access keys: kept across opens, secrets never in the clear on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.auth import DEFAULT_ACCOUNT, KeyStore
from lamina.auth.errors import AccountError


def test_a_created_key_verifies_with_its_secret_after_the_store_is_reopened(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path)
    account = store.create_account()
    key_id, secret = store.create_key(account)
    store.close()

    reopened = KeyStore(tmp_path)

    assert len(account) == 12 and account.isdigit()
    assert key_id.startswith("AKIA") and len(key_id) == 20
    assert reopened.secret(key_id) == (account, secret)


def test_the_database_does_not_hold_the_secret_in_the_clear(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    _, secret = store.create_key(store.create_account())
    store.close()

    assert secret.encode() not in (tmp_path / "accounts.db").read_bytes()
    assert (tmp_path / "accounts.key").stat().st_mode & 0o077 == 0


def test_a_database_copied_without_its_master_key_reveals_no_secret(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "a")
    key_id, _ = store.create_key(store.create_account())
    store.close()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "accounts.db").write_bytes((tmp_path / "a" / "accounts.db").read_bytes())

    assert KeyStore(tmp_path / "b").secret(key_id) is None


def test_a_disabled_key_is_not_found_until_enabled_and_a_deleted_one_is_gone(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path)
    key_id, secret = store.create_key(store.create_account("111122223333"))

    store.set_status(key_id, "Inactive")
    assert store.secret(key_id) is None
    store.set_status(key_id, "Active")
    assert store.secret(key_id) == ("111122223333", secret)
    store.delete_key(key_id)

    assert store.secret(key_id) is None
    assert store.keys("111122223333") == []


def test_the_development_key_is_active_only_when_enabled(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)

    store.ensure_default(enabled=True)
    assert store.secret("test") == (DEFAULT_ACCOUNT, "test")
    store.ensure_default(enabled=False)

    assert store.secret("test") is None


@pytest.mark.parametrize("account_id", ["12345", "abcdefghijkl", "1234567890123"])
def test_an_account_id_must_be_twelve_digits(tmp_path: Path, account_id: str) -> None:
    with pytest.raises(AccountError, match="12 digits"):
        KeyStore(tmp_path).create_account(account_id)


def test_a_key_needs_an_existing_account_and_ids_are_unique(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    store.create_account("111122223333")

    with pytest.raises(AccountError, match="no account"):
        store.create_key("999999999999")
    with pytest.raises(AccountError, match="exists"):
        store.create_account("111122223333")


def test_a_key_disabled_or_deleted_through_another_store_is_refused_at_once(
    tmp_path: Path,
) -> None:
    serving, admin = KeyStore(tmp_path), KeyStore(tmp_path)
    key_id, secret = admin.create_key(admin.create_account("111122223333"))
    assert serving.secret(key_id) == ("111122223333", secret)

    admin.set_status(key_id, "Inactive")
    assert serving.secret(key_id) is None
    admin.set_status(key_id, "Active")
    assert serving.secret(key_id) == ("111122223333", secret)
    admin.delete_key(key_id)
    assert serving.secret(key_id) is None

    admin.create_key("111122223333", key_id, "a-new-secret")
    assert serving.secret(key_id) == ("111122223333", "a-new-secret")
