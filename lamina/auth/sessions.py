"""A function's own credentials: short-lived, scoped to one sandbox of one function.

Lambda hands each execution environment temporary credentials of the function's execution
role (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`). Lamina's worker mints
them when it starts a sandbox, with no call to anyone: the access key id is `ASIA` and random,
the secret is derived from it, and the session token says whose they are (account, function,
role, sandbox) and until when, sealed with the session key every part of the platform derives
from its platform token. The frontend checks them as statelessly: the seal, the expiry, and
that the sandbox still exists, so they die with their sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from lamina.auth.errors import TokenExpired, UnknownKey
from lamina.auth.keys import new_key_id
from lamina.clock import Clock

log = logging.getLogger(__name__)

SESSION_PREFIX = "ASIA"
# The longest a sandbox's credentials live, even if the sandbox lives on: IAM's longest role
# session. Most die sooner, with their sandbox.
SESSION_LIFETIME_S = 12 * 3600
_INVALID = "The security token included in the request is invalid."


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def environment(self) -> dict[str, str]:
        """The variables Lambda sets in a function's environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


@dataclass(frozen=True)
class FunctionSession:
    """Whose temporary credentials a request was signed with."""

    access_key_id: str
    account_id: str
    function: str
    role: str  # the execution role's ARN, as the function's configuration names it
    sandbox_id: str
    expires_at: float

    def assumed_role_arn(self) -> str:
        """The caller as AWS names a role session: assumed-role/ROLE/SESSION, in STS."""
        role_name = self.role.rsplit("/", 1)[-1] or "unknown"
        return f"arn:aws:sts::{self.account_id}:assumed-role/{role_name}/{self.function}"


def session_key(platform_token: str) -> bytes:
    """The key sessions are sealed with, derived from the platform token."""
    return hmac.new(platform_token.encode(), b"lamina function sessions", hashlib.sha256).digest()


class SessionAuthority:
    """Mints a sandbox's credentials (worker) and checks them (frontend).

    `alive(sandbox_id)` says whether a sandbox still exists; a worker passes none.
    """

    def __init__(
        self,
        key: bytes,
        clock: Clock,
        alive: Callable[[str], bool] | None = None,
        lifetime_s: float = SESSION_LIFETIME_S,
    ) -> None:
        self._key = key
        self._clock = clock
        self._alive = alive
        self.lifetime_s = lifetime_s

    def mint(self, account_id: str, function: str, role: str, sandbox_id: str) -> Credentials:
        access_key_id = new_key_id(SESSION_PREFIX)
        expires_at = self._clock.time() + self.lifetime_s
        session = FunctionSession(
            access_key_id, account_id, function, role, sandbox_id, round(expires_at, 3)
        )
        payload = _b64(json.dumps(asdict(session), separators=(",", ":")).encode())
        token = f"{payload}.{_b64(self._seal(payload.encode()))}"
        return Credentials(access_key_id, self._secret(access_key_id), token)

    def check(self, access_key_id: str, token: str | None) -> tuple[FunctionSession, str]:
        """The session and secret of temporary credentials, or UnknownKey / TokenExpired."""
        session = self._open(token or "")
        if session is None or session.access_key_id != access_key_id:
            raise UnknownKey(_INVALID)

        expired = self._clock.time() > session.expires_at
        if expired or (self._alive is not None and not self._alive(session.sandbox_id)):
            log.debug("session refused key=%s sandbox=%s", access_key_id, session.sandbox_id)
            raise TokenExpired("The security token included in the request is expired")
        return session, self._secret(access_key_id)

    def _open(self, token: str) -> FunctionSession | None:
        payload, _, seal = token.partition(".")
        try:
            valid = hmac.compare_digest(_unb64(seal), self._seal(payload.encode()))
            return FunctionSession(**json.loads(_unb64(payload))) if valid else None
        except (ValueError, TypeError):
            return None

    def _seal(self, payload: bytes) -> bytes:
        return hmac.new(self._key, b"token:" + payload, hashlib.sha256).digest()

    def _secret(self, access_key_id: str) -> str:
        derived = hmac.new(self._key, b"secret:" + access_key_id.encode(), hashlib.sha256)
        return _b64(derived.digest())[:40]


def is_session_key(access_key_id: str) -> bool:
    return access_key_id.startswith(SESSION_PREFIX)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
