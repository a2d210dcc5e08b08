"""SigV4 verification against requests signed by botocore, with the clock in the test's hands."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.auth import RawRequest, Verifier
from lamina.auth.errors import (
    IncompleteSignature,
    MissingToken,
    SignatureExpired,
    SignatureMismatch,
    UnknownKey,
    WrongScope,
)
from lamina.clock import FakeClock

KEYS = {"AKIAEXAMPLE": ("111122223333", "right-secret")}
ARN_PATH = (
    "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A111122223333%3Afunction%3Afn"
    "/invocations"
)


def verifier(clock: FakeClock) -> Verifier:
    return Verifier(KEYS.get, clock)


def now_clock() -> FakeClock:
    return FakeClock(epoch=time.time())


def sign(
    method: str = "POST",
    target: str = ARN_PATH + "?Qualifier=live",
    body: bytes = b'{"a": 1}',
    secret: str = "right-secret",
    key: str = "AKIAEXAMPLE",
    service: str = "lambda",
    region: str = "eu-west-1",
    **headers: str,
) -> RawRequest:
    url = "http://127.0.0.1:9000" + target
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(key, secret), service, region).add_auth(request)
    sent = dict(request.headers.items())
    sent["Host"] = "127.0.0.1:9000"
    return RawRequest(method, target, sent, body)


def replace(request: RawRequest, **changes: Any) -> RawRequest:
    fields = {"method": request.method, "target": request.target, "headers": request.headers,
              "body": request.body}  # fmt: skip
    fields.update(changes)
    return RawRequest(**fields)


def test_a_request_signed_with_the_right_secret_names_its_account_and_region() -> None:
    principal = verifier(now_clock()).verify(sign(), "lambda")

    assert principal.account_id == "111122223333"
    assert principal.access_key_id == "AKIAEXAMPLE"
    assert principal.region == "eu-west-1"


def test_a_wrong_secret_is_an_invalid_signature() -> None:
    with pytest.raises(SignatureMismatch, match="does not match the signature you provided"):
        verifier(now_clock()).verify(sign(secret="wrong"), "lambda")


def test_an_unknown_key_is_an_unrecognized_client() -> None:
    with pytest.raises(UnknownKey, match="The security token included in the request is invalid"):
        verifier(now_clock()).verify(sign(key="AKIAUNKNOWN"), "lambda")


def test_a_request_replayed_six_minutes_later_has_expired() -> None:
    clock = now_clock()
    request = sign()
    verifier(clock).verify(request, "lambda")

    clock.advance(360)

    with pytest.raises(SignatureExpired, match=r"^Signature expired: \d{8}T\d{6}Z is now earlier"):
        verifier(clock).verify(request, "lambda")


def test_a_request_replayed_four_minutes_later_is_still_within_the_skew() -> None:
    clock = now_clock()
    request = sign()

    clock.advance(240)

    assert verifier(clock).verify(request, "lambda").account_id == "111122223333"


def test_a_request_signed_six_minutes_in_the_future_is_not_yet_current() -> None:
    clock = FakeClock(epoch=time.time() - 360)

    with pytest.raises(SignatureExpired, match="Signature not yet current"):
        verifier(clock).verify(sign(), "lambda")


def test_a_tampered_body_does_not_match() -> None:
    request = sign()

    with pytest.raises(SignatureMismatch):
        verifier(now_clock()).verify(replace(request, body=b'{"a": 2}'), "lambda")


def test_a_tampered_path_or_query_does_not_match() -> None:
    request = sign()
    other_function = request.target.replace("function%3Afn", "function%3Aother")
    other_qualifier = request.target.replace("Qualifier=live", "Qualifier=prod")

    for target in (other_function, other_qualifier):
        with pytest.raises(SignatureMismatch):
            verifier(now_clock()).verify(replace(request, target=target), "lambda")


def test_a_tampered_signed_header_does_not_match() -> None:
    request = sign(**{"X-Amz-Invocation-Type": "Event"})
    headers = dict(request.headers, **{"X-Amz-Invocation-Type": "RequestResponse"})

    with pytest.raises(SignatureMismatch):
        verifier(now_clock()).verify(replace(request, headers=headers), "lambda")


def test_a_declared_payload_hash_must_match_the_body() -> None:
    request = sign(**{"X-Amz-Content-SHA256": "0" * 64})

    with pytest.raises(SignatureMismatch, match="x-amz-content-sha256"):
        verifier(now_clock()).verify(request, "lambda")


def test_an_unsigned_payload_is_accepted_when_the_sender_declares_it() -> None:
    request = sign(**{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})

    changed_body = replace(request, body=b"anything")

    assert verifier(now_clock()).verify(changed_body, "lambda").account_id == "111122223333"


def test_a_request_without_a_signature_is_missing_its_token() -> None:
    with pytest.raises(MissingToken, match="Missing Authentication Token"):
        verifier(now_clock()).verify(RawRequest("GET", "/2015-03-31/functions", {}, b""), "lambda")


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/us-east-1/lambda/aws4_request",
        "Bearer abc",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=00",
    ],
    ids=["no-signature", "other-scheme", "empty", "short-credential"],
)
def test_a_malformed_authorization_header_is_an_incomplete_signature(authorization: str) -> None:
    headers = {"Authorization": authorization, "X-Amz-Date": "20240101T000000Z"}

    with pytest.raises(IncompleteSignature):
        verifier(now_clock()).verify(RawRequest("GET", "/", headers, b""), "lambda")


def test_a_credential_scoped_to_another_service_is_refused() -> None:
    with pytest.raises(WrongScope, match="correct service: 'lambda'"):
        verifier(now_clock()).verify(sign(service="s3"), "lambda")


def test_a_logs_request_verifies_against_the_logs_service() -> None:
    request = sign("POST", "/", b"{}", service="logs", **{"X-Amz-Target": "Logs_20140328.X"})

    assert verifier(now_clock()).verify(request, "logs").region == "eu-west-1"


def presign(expires: int, target: str = "/2015-03-31/functions?MaxItems=5") -> RawRequest:
    credentials = Credentials("AKIAEXAMPLE", "right-secret")
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000" + target)
    SigV4QueryAuth(credentials, "lambda", "us-east-1", expires=expires).add_auth(request)
    url = request.url
    sent_target = url[url.index("/", len("http://")) :]
    return RawRequest("GET", sent_target, {"Host": "127.0.0.1:9000"}, b"")


def test_a_presigned_query_is_accepted_until_it_expires() -> None:
    clock = now_clock()
    request = presign(expires=60)
    assert verifier(clock).verify(request, "lambda").account_id == "111122223333"

    clock.advance(120)

    with pytest.raises(SignatureExpired):
        verifier(clock).verify(request, "lambda")


def test_a_presigned_query_with_a_changed_parameter_does_not_match() -> None:
    request = presign(expires=60)
    tampered = replace(request, target=request.target.replace("MaxItems=5", "MaxItems=50"))

    with pytest.raises(SignatureMismatch):
        verifier(now_clock()).verify(tampered, "lambda")


def test_a_signed_header_that_is_not_ascii_is_a_mismatch_not_a_crash() -> None:
    request = sign(**{"X-Amz-Tenant-Id": "plain"})
    headers = dict(request.headers, **{"X-Amz-Tenant-Id": "\u0100"})

    with pytest.raises(SignatureMismatch):
        verifier(now_clock()).verify(replace(request, headers=headers), "lambda")


def test_a_credential_scoped_to_a_region_not_served_is_refused() -> None:
    served_elsewhere = Verifier(KEYS.get, now_clock(), region="us-east-1")

    with pytest.raises(WrongScope, match="Credential should be scoped to a valid region"):
        served_elsewhere.verify(sign(region="eu-west-1"), "lambda")

    assert served_elsewhere.verify(sign(region="us-east-1"), "lambda").region == "us-east-1"


def test_a_key_whose_secret_changed_verifies_only_with_its_new_secret() -> None:
    secrets = {"AKIAEXAMPLE": ("111122223333", "first-secret")}
    checker = Verifier(secrets.get, now_clock())
    checker.verify(sign(secret="first-secret"), "lambda")

    secrets["AKIAEXAMPLE"] = ("111122223333", "second-secret")

    with pytest.raises(SignatureMismatch):
        checker.verify(sign(secret="first-secret"), "lambda")
    assert checker.verify(sign(secret="second-secret"), "lambda").account_id == "111122223333"


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "ap-southeast-2"])
def test_requests_scoped_to_different_regions_verify_one_after_another(region: str) -> None:
    checker = verifier(now_clock())

    for scope in ("eu-west-1", region, "eu-west-1"):
        assert checker.verify(sign(region=scope), "lambda").region == scope


def test_a_signed_header_list_naming_a_header_not_sent_does_not_match() -> None:
    request = sign()
    authorization = request.headers["Authorization"].replace(
        "SignedHeaders=", "SignedHeaders=x-amz-meta-absent;"
    )
    headers = {**request.headers, "Authorization": authorization}

    with pytest.raises(SignatureMismatch, match="does not match the signature you provided"):
        verifier(now_clock()).verify(replace(request, headers=headers), "lambda")


def test_a_long_term_key_sent_with_a_session_token_is_an_unrecognized_client() -> None:
    request = sign(**{"X-Amz-Security-Token": "not-a-session"})

    with pytest.raises(UnknownKey, match="The security token included in the request is invalid"):
        verifier(now_clock()).verify(request, "lambda")


def signed_with_date_header(when: float, secret: str = "right-secret") -> RawRequest:
    """A request dated by its HTTP Date header alone, which SigV4 allows instead of X-Amz-Date."""
    target = "/2015-03-31/functions/"
    date = email.utils.formatdate(when, usegmt=True)
    request = AWSRequest(
        method="GET",
        url="http://127.0.0.1:9000" + target,
        headers={"Host": "127.0.0.1:9000", "Date": date},
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials("AKIAEXAMPLE", secret), "lambda", "eu-west-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    authorization = (
        f"AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/{stamp[:8]}/eu-west-1/lambda/aws4_request, "
        f"SignedHeaders=date;host, Signature={signature}"
    )
    headers = {"Host": "127.0.0.1:9000", "Date": date, "Authorization": authorization}
    return RawRequest("GET", target, headers, b"")


def test_a_request_dated_by_its_date_header_is_verified_and_replays_expire() -> None:
    clock = now_clock()
    request = signed_with_date_header(clock.time())

    assert verifier(clock).verify(request, "lambda").account_id == "111122223333"
    with pytest.raises(SignatureMismatch):
        verifier(clock).verify(signed_with_date_header(clock.time(), "wrong"), "lambda")
    clock.advance(360)
    with pytest.raises(SignatureExpired, match="Signature expired"):
        verifier(clock).verify(request, "lambda")
