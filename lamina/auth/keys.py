"""Accounts and their access keys, kept in SQLite with secrets encrypted at rest.

SigV4 verification needs the secret itself (the signing key is derived from it per day,
region and service), so a one-way hash cannot be stored. Secrets are encrypted with Fernet
(AES-128-CBC with an HMAC-SHA256 tag) under a master key kept in its own file in the data
directory, readable by its owner only: a copy of the database alone reveals no secret.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import string
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from lamina.auth.errors import AccountError

log = logging.getLogger(__name__)

# The account of local AWS emulators, whose development key is `test` / `test`.
DEFAULT_ACCOUNT = "000000000000"
DEFAULT_KEY_ID = "test"
DEFAULT_SECRET = "test"
# Decrypted secrets kept in memory, by their sealed form; more keys than this start over.
UNSEALED_KEPT = 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id TEXT PRIMARY KEY,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    secret TEXT NOT NULL,
    status TEXT NOT NULL,
    created TEXT NOT NULL
);
-- Keys that may also use Lamina's own endpoints (/_lamina: state, fleet, code).
CREATE TABLE IF NOT EXISTS admin_keys (access_key_id TEXT PRIMARY KEY);
"""
_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"


def new_key_id(prefix: str) -> str:
    """A fresh access key id as AWS shapes them: a 4-letter kind and 16 random characters."""
    return prefix + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    account_id: str
    status: str
    created: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _master_key(path: Path) -> Fernet:
    """The data directory's master key, created once with owner-only permissions."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
    return Fernet(path.read_bytes().strip())


class KeyStore:
    """Accounts and access keys of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._fernet = _master_key(data_dir / "accounts.key")
        self._unsealed: dict[str, str] = {}
        self._db = sqlite3.connect(data_dir / "accounts.db", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def create_account(self, account_id: str | None = None) -> str:
        """A new account with a random 12-digit id, or the one given."""
        account_id = account_id or "".join(secrets.choice(string.digits) for _ in range(12))
        if len(account_id) != 12 or not account_id.isdigit():
            raise AccountError(f"an account id is 12 digits, not {account_id!r}")
        with self._lock, self._db:
            try:
                self._db.execute("INSERT INTO accounts VALUES (?, ?)", (account_id, _now()))
            except sqlite3.IntegrityError as exc:
                raise AccountError(f"account {account_id} exists") from exc
        log.info("account created account=%s", account_id)
        return account_id

    def accounts(self) -> list[str]:
        rows = self._db.execute("SELECT account_id FROM accounts ORDER BY account_id")
        return [row[0] for row in rows]

    def create_key(
        self,
        account_id: str,
        access_key_id: str | None = None,
        secret: str | None = None,
        admin: bool = False,
    ) -> tuple[str, str]:
        """A new active key of the account: (access key id, secret), the secret shown once.

        An `admin` key may also use Lamina's own endpoints.
        """
        if account_id not in self.accounts():
            raise AccountError(f"no account {account_id}")
        access_key_id = access_key_id or new_key_id("AKIA")
        secret = secret or secrets.token_urlsafe(30)
        sealed = self._fernet.encrypt(secret.encode()).decode()
        with self._lock, self._db:
            try:
                self._db.execute(
                    "INSERT INTO access_keys VALUES (?, ?, ?, 'Active', ?)",
                    (access_key_id, account_id, sealed, _now()),
                )
                if admin:
                    self._db.execute("INSERT INTO admin_keys VALUES (?)", (access_key_id,))
            except sqlite3.IntegrityError as exc:
                raise AccountError(f"access key {access_key_id} exists") from exc
        log.info("access key created account=%s key=%s admin=%s", account_id, access_key_id, admin)
        return access_key_id, secret

    def keys(self, account_id: str | None = None) -> list[AccessKey]:
        query = "SELECT access_key_id, account_id, status, created FROM access_keys"
        rows = (
            self._db.execute(query + " WHERE account_id = ? ORDER BY created", (account_id,))
            if account_id
            else self._db.execute(query + " ORDER BY account_id, created")
        )
        return [AccessKey(*row) for row in rows]

    def set_status(self, access_key_id: str, status: str) -> None:
        with self._lock, self._db:
            changed = self._db.execute(
                "UPDATE access_keys SET status = ? WHERE access_key_id = ?",
                (status, access_key_id),
            ).rowcount
        if not changed:
            raise AccountError(f"no access key {access_key_id}")

    def delete_key(self, access_key_id: str) -> None:
        with self._lock, self._db:
            deleted = self._db.execute(
                "DELETE FROM access_keys WHERE access_key_id = ?", (access_key_id,)
            ).rowcount
            self._db.execute("DELETE FROM admin_keys WHERE access_key_id = ?", (access_key_id,))
        if not deleted:
            raise AccountError(f"no access key {access_key_id}")

    def secret(self, access_key_id: str) -> tuple[str, str] | None:
        """(account id, secret) of an active key, or None for an unknown or disabled one."""
        row = self._db.execute(
            "SELECT account_id, secret FROM access_keys "
            "WHERE access_key_id = ? AND status = 'Active'",
            (access_key_id,),
        ).fetchone()
        if row is None:
            return None
        try:
            return row[0], self._unseal(row[1])
        except InvalidToken:
            log.error("access key not readable with this master key key=%s", access_key_id)
            return None

    def _unseal(self, sealed: str) -> str:
        # The row is read on every request, so a disabled or deleted key is refused at once;
        # only the decryption of a sealed secret seen before is spared.
        secret = self._unsealed.get(sealed)
        if secret is None:
            secret = self._fernet.decrypt(sealed.encode()).decode()
            if len(self._unsealed) >= UNSEALED_KEPT:
                self._unsealed.clear()
            self._unsealed[sealed] = secret
        return secret

    def is_admin(self, access_key_id: str) -> bool:
        """Whether an active key may use Lamina's own endpoints."""
        row = self._db.execute(
            "SELECT 1 FROM admin_keys JOIN access_keys USING (access_key_id) "
            "WHERE access_key_id = ? AND status = 'Active'",
            (access_key_id,),
        ).fetchone()
        return row is not None

    def ensure_default(self, enabled: bool) -> None:
        """The development account and its `test` key, active only when `enabled`."""
        if DEFAULT_ACCOUNT not in self.accounts():
            self.create_account(DEFAULT_ACCOUNT)
        if not any(k.access_key_id == DEFAULT_KEY_ID for k in self.keys(DEFAULT_ACCOUNT)):
            # An admin too, so that local tools need no set-up; it is on only on loopback.
            self.create_key(DEFAULT_ACCOUNT, DEFAULT_KEY_ID, DEFAULT_SECRET, admin=True)
        with self._lock, self._db:
            self._db.execute("INSERT OR IGNORE INTO admin_keys VALUES (?)", (DEFAULT_KEY_ID,))
        self.set_status(DEFAULT_KEY_ID, "Active" if enabled else "Inactive")
