"""AWS Signature Version 4, verified as AWS verifies it.

The canonical request is rebuilt from the request as it arrived (method, raw path and query,
the headers the sender says it signed, the payload hash), the signature recomputed with
botocore's signing code from the secret the key store holds, and the two compared in
constant time. Both forms are accepted: the Authorization header and a presigned query.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import SIGV4_TIMESTAMP, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lamina.auth.errors import (
    IncompleteSignature,
    MissingToken,
    SignatureExpired,
    SignatureMismatch,
    UnknownKey,
    WrongScope,
)
from lamina.auth.sessions import FunctionSession, SessionAuthority, is_session_key
from lamina.clock import Clock

log = logging.getLogger(__name__)

ALGORITHM = "AWS4-HMAC-SHA256"
# How far a signing time may be from ours, either way, as AWS allows.
MAX_SKEW_S = 300
# The longest a presigned request lives, as AWS allows (seven days).
MAX_PRESIGN_EXPIRES_S = 604_800
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
_PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders")

# (account id, secret) of an active access key, or None.
SecretLookup = Callable[[str], "tuple[str, str] | None"]


@dataclass(frozen=True)
class RawRequest:
    """A request as it arrived: `target` is the path and query exactly as sent."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Principal:
    """Who signed a request, and where: the region comes from the credential scope."""

    account_id: str
    access_key_id: str
    region: str
    # Set when the key is a function's own temporary credentials.
    session: FunctionSession | None = None


@dataclass(frozen=True)
class _Signed:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    timestamp: str
    expires_s: int | None


class _ServerSigner(SigV4Auth):
    """botocore's SigV4 with the signed headers fixed to those the sender named."""

    def __init__(self, credentials: Credentials, signed: _Signed) -> None:
        super().__init__(credentials, signed.service, signed.region)
        self._signed = signed

    def headers_to_sign(self, request: AWSRequest):  # type: ignore[no-untyped-def]
        wanted = set(self._signed.signed_headers)
        signed = super().headers_to_sign(request)
        for name in list(signed.keys()):
            if name not in wanted:
                del signed[name]
        for name in wanted:
            if name not in signed and name in request.headers:
                signed[name] = request.headers[name]
        return signed

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        # botocore derives the signing key with four HMACs on every call; it changes only
        # with the secret, the day and the scope, so it is derived once for those.
        key = _signing_key(
            self.credentials.secret_key,
            request.context["timestamp"][:8],
            self._region_name,
            self._service_name,
        )
        return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's signing key: HMAC chained over the date, region, service and request type."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


class Verifier:
    """Establishes the principal of a request, or raises an AuthError."""

    def __init__(
        self,
        lookup: SecretLookup,
        clock: Clock,
        region: str | None = None,
        sessions: SessionAuthority | None = None,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        # The region served: a credential scoped to another was meant for another endpoint.
        self._region = region
        self._sessions = sessions

    def verify(self, request: RawRequest, service: str) -> Principal:
        headers = {name.lower(): value for name, value in request.headers.items()}
        query = dict(parse_qsl(urlsplit(request.target).query, keep_blank_values=True))
        if "authorization" in headers:
            signed = _from_header(headers["authorization"], headers)
        elif "X-Amz-Signature" in query or "X-Amz-Credential" in query:
            signed = _from_query(query)
        else:
            raise MissingToken("Missing Authentication Token")

        self._check_scope(signed, service)
        self._check_time(signed)
        session = None
        if self._sessions is not None and is_session_key(signed.access_key_id):
            token = headers.get("x-amz-security-token") or query.get("X-Amz-Security-Token")
            session, secret = self._sessions.check(signed.access_key_id, token)
            account_id = session.account_id
        else:
            account_id, secret = self._secret(signed.access_key_id)
            # A long-term key has no session: AWS refuses a token sent along with one.
            if "x-amz-security-token" in headers or "X-Amz-Security-Token" in query:
                raise UnknownKey("The security token included in the request is invalid.")
        expected = _signature(request, headers, signed, secret)
        if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
            log.debug("signature mismatch key=%s %s", signed.access_key_id, request.target)
            raise SignatureMismatch(_MISMATCH)
        return Principal(account_id, signed.access_key_id, signed.region, session)

    def _secret(self, access_key_id: str) -> tuple[str, str]:
        found = self._lookup(access_key_id)
        if found is None:
            raise UnknownKey("The security token included in the request is invalid.")
        return found

    def _check_scope(self, signed: _Signed, service: str) -> None:
        if signed.service != service:
            raise WrongScope(f"Credential should be scoped to correct service: '{service}'. ")
        served = self._region in (None, signed.region)
        if not served or not _REGION.match(signed.region):
            raise WrongScope("Credential should be scoped to a valid region. ")
        if signed.timestamp[:8] != signed.date:
            raise WrongScope(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                f"date from HTTP: '{signed.date}' != '{signed.timestamp[:8]}', "
                f"from '{signed.timestamp}'."
            )

    def _check_time(self, signed: _Signed) -> None:
        try:
            when = datetime.strptime(signed.timestamp, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
        except ValueError as exc:
            raise IncompleteSignature(
                f"Date must be in ISO-8601 'basic format'. Got '{signed.timestamp}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601"
            ) from exc
        signed_at = when.timestamp()
        now = self._clock.time()
        if signed.expires_s is not None:
            if now > signed_at + signed.expires_s:
                raise SignatureExpired("Signature expired")
            return
        if signed_at < now - MAX_SKEW_S:
            raise SignatureExpired(
                f"Signature expired: {signed.timestamp} is now earlier than "
                f"{_stamp(now - MAX_SKEW_S)} ({_stamp(now)} - 5 min.)"
            )
        if signed_at > now + MAX_SKEW_S:
            raise SignatureExpired(
                f"Signature not yet current: {signed.timestamp} is still later than "
                f"{_stamp(now + MAX_SKEW_S)} ({_stamp(now)} + 5 min.)"
            )


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(SIGV4_TIMESTAMP)


def _from_header(authorization: str, headers: Mapping[str, str]) -> _Signed:
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignature(
            f"Authorization header requires 'Credential' parameter. Authorization header "
            f"requires 'Signature' parameter. Authorization header requires 'SignedHeaders' "
            f"parameter. Authorization={authorization}"
        )
    parts = dict(part.strip().partition("=")[::2] for part in rest.split(",") if "=" in part)
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if name not in parts]
    timestamp = headers.get("x-amz-date") or _from_http_date(headers.get("date"))
    problems = [f"Authorization header requires '{name}' parameter." for name in missing]
    if timestamp is None:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise IncompleteSignature(" ".join(problems) + f" Authorization={authorization}")
    assert timestamp is not None
    credential, names, signature = parts["Credential"], parts["SignedHeaders"], parts["Signature"]
    return _signed(credential, names, signature, timestamp, None)


def _from_http_date(value: str | None) -> str | None:
    """An HTTP Date header in SigV4's basic ISO-8601 form, which the string to sign uses."""
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        # Left as sent, it fails the scope or format check with AWS's message.
        return value
    # HTTP dates are GMT; one marked "-0000" parses without a zone.
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime(SIGV4_TIMESTAMP)


def _from_query(query: Mapping[str, str]) -> _Signed:
    missing = [name for name in (*_PRESIGN_PARAMS, "X-Amz-Signature") if name not in query]
    if missing or query["X-Amz-Algorithm"] != ALGORITHM:
        raise IncompleteSignature(
            "AWS query-string parameters must include "
            + ", ".join(f"'{name}'" for name in (*_PRESIGN_PARAMS, "X-Amz-Signature"))
            + ". Re-examine the query-string parameters."
        )
    try:
        expires_s = int(query.get("X-Amz-Expires", str(MAX_PRESIGN_EXPIRES_S)))
    except ValueError as exc:
        raise IncompleteSignature("X-Amz-Expires must be a number of seconds") from exc
    if not 0 < expires_s <= MAX_PRESIGN_EXPIRES_S:
        raise IncompleteSignature(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800"
        )
    return _signed(
        query["X-Amz-Credential"], query["X-Amz-SignedHeaders"], query["X-Amz-Signature"],
        query["X-Amz-Date"], expires_s,
    )  # fmt: skip


def _signed(
    credential: str, signed_headers: str, signature: str, timestamp: str, expires_s: int | None
) -> _Signed:
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise IncompleteSignature(
            f"Credential should be scoped to a valid region, service and 'aws4_request'. "
            f"Credential={credential}"
        )
    names = [name.strip().lower() for name in signed_headers.split(";") if name.strip()]
    if "host" not in names:
        raise SignatureMismatch("'Host' or ':authority' must be a 'SignedHeader' in the "
                                "AWS Authorization.")  # fmt: skip
    key_id, date, region, service, _ = scope
    return _Signed(key_id, date, region, service, names, signature, timestamp, expires_s)


def _signature(
    request: RawRequest, headers: Mapping[str, str], signed: _Signed, secret: str
) -> str:
    """The signature the holder of `secret` would have sent for this request."""
    declared = headers.get("x-amz-content-sha256")
    body_hash = hashlib.sha256(request.body).hexdigest()
    if declared not in (None, UNSIGNED_PAYLOAD) and not hmac.compare_digest(declared, body_hash):
        raise SignatureMismatch(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )

    # botocore canonicalises only text headers; a non-ASCII value cannot have been signed so.
    if any(not headers.get(name, "").isascii() for name in signed.signed_headers):
        raise SignatureMismatch(_MISMATCH)
    # AWS canonicalises every header the sender names; one that was not sent cannot match.
    if any(name not in headers for name in signed.signed_headers):
        raise SignatureMismatch(_MISMATCH)

    target = request.target
    if signed.expires_s is not None:
        target = _without_signature(target)
    aws_request = AWSRequest(
        method=request.method,
        url="http://lamina" + target,
        headers=dict(request.headers),
        data=request.body,
    )
    aws_request.context["timestamp"] = signed.timestamp
    signer = _ServerSigner(Credentials(signed.access_key_id, secret), signed)
    canonical = signer.canonical_request(aws_request)
    string_to_sign = signer.string_to_sign(aws_request, canonical)
    return signer.signature(string_to_sign, aws_request)


def _without_signature(target: str) -> str:
    """The target with X-Amz-Signature taken out, as the presigned canonical query is."""
    path, _, query = target.partition("?")
    kept = [pair for pair in query.split("&") if not pair.startswith("X-Amz-Signature=")]
    return f"{path}?{'&'.join(kept)}" if kept else path
