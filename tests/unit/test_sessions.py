"""A function's credentials: minted by a worker, checked by the frontend, with a fake clock."""

from __future__ import annotations

import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.auth import RawRequest, Verifier
from lamina.auth.errors import TokenExpired, UnknownKey
from lamina.auth.sessions import SessionAuthority, session_key
from lamina.clock import FakeClock

ROLE = "arn:aws:iam::111122223333:role/service-role/reader"


def authority(clock: FakeClock, alive: set[str] | None = None) -> SessionAuthority:
    key = session_key("platform-token")
    return SessionAuthority(key, clock, None if alive is None else alive.__contains__, 3600)


def signed_list(access_key: str, secret: str, token: str | None) -> RawRequest:
    url = "http://127.0.0.1:9000/2015-03-31/functions"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(access_key, secret, token), "lambda", "us-east-1").add_auth(request)
    sent = dict(request.headers.items())
    sent["Host"] = "127.0.0.1:9000"
    return RawRequest("GET", "/2015-03-31/functions", sent, b"")


def test_minted_credentials_name_their_account_function_role_and_sandbox() -> None:
    clock = FakeClock(epoch=time.time())
    minted = authority(clock).mint("111122223333", "fn", ROLE, "sb-1")

    session, secret = authority(clock).check(minted.access_key_id, minted.session_token)

    assert minted.access_key_id.startswith("ASIA") and secret == minted.secret_access_key
    assert (session.account_id, session.function, session.sandbox_id) == (
        "111122223333", "fn", "sb-1",
    )  # fmt: skip
    assert session.assumed_role_arn() == "arn:aws:sts::111122223333:assumed-role/reader/fn"


def test_credentials_expire_after_their_lifetime_and_with_their_sandbox() -> None:
    clock = FakeClock(epoch=time.time())
    alive = {"sb-1"}
    minted = authority(clock, alive).mint("111122223333", "fn", ROLE, "sb-1")

    clock.advance(3599)
    authority(clock, alive).check(minted.access_key_id, minted.session_token)
    alive.clear()

    with pytest.raises(TokenExpired):
        authority(clock, alive).check(minted.access_key_id, minted.session_token)
    with pytest.raises(TokenExpired):
        authority(FakeClock(epoch=clock.time() + 2)).check(
            minted.access_key_id, minted.session_token
        )


@pytest.mark.parametrize("token", [None, "", "x.y", "garbage", "e30.AAAA"])
def test_a_missing_or_forged_session_token_is_an_unknown_key(token: str | None) -> None:
    clock = FakeClock(epoch=time.time())
    minted = authority(clock).mint("111122223333", "fn", ROLE, "sb-1")

    with pytest.raises(UnknownKey):
        authority(clock).check(minted.access_key_id, token)


def test_a_token_of_another_key_or_sealed_with_another_platform_token_is_refused() -> None:
    clock = FakeClock(epoch=time.time())
    first = authority(clock).mint("111122223333", "fn", ROLE, "sb-1")
    second = authority(clock).mint("111122223333", "fn", ROLE, "sb-2")
    elsewhere = SessionAuthority(session_key("another-platform"), clock).mint(
        "111122223333", "fn", ROLE, "sb-1"
    )

    with pytest.raises(UnknownKey):
        authority(clock).check(first.access_key_id, second.session_token)
    with pytest.raises(UnknownKey):
        authority(clock).check(elsewhere.access_key_id, elsewhere.session_token)


def test_the_verifier_names_the_function_session_of_a_request_signed_with_its_keys() -> None:
    clock = FakeClock(epoch=time.time())
    minted = authority(clock).mint("111122223333", "fn", ROLE, "sb-1")
    verifier = Verifier({}.get, clock, sessions=authority(clock))

    principal = verifier.verify(
        signed_list(minted.access_key_id, minted.secret_access_key, minted.session_token),
        "lambda",
    )

    assert principal.account_id == "111122223333"
    assert principal.session is not None and principal.session.function == "fn"
    with pytest.raises(UnknownKey):
        bare = signed_list(minted.access_key_id, minted.secret_access_key, None)
        verifier.verify(bare, "lambda")
