"""The frontend's door: every API request proves its sender with SigV4 before it is served.

Lamina's own endpoints under /_lamina (state, fleet, placement, code) are not part of the AWS
API: they take the platform token (Lamina's own parts) or a request signed with an admin key
(operators); a code download also takes the link GetFunction handed out. Health stays open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from lamina.auth import Principal, RawRequest, Verifier
from lamina.auth.errors import (
    AuthError,
    IncompleteSignature,
    MissingToken,
    SignatureExpired,
    SignatureMismatch,
    TokenExpired,
    UnknownKey,
    WrongScope,
)
from lamina.auth.platform import TOKEN_HEADER, PlatformAuth
from lamina.frontend.errors import AccessDenied, SignatureRefused

log = logging.getLogger(__name__)

PRINCIPAL = "lamina.principal"
_OPEN = frozenset({"/_lamina/health"})
_OWN_PREFIX = "/_lamina/"
_CODE_PREFIX = "/_lamina/v1/code/"
_NOT_ADMIN = (
    "Lamina's own endpoints need the platform token or a request signed with an admin key "
    "(lamina keys create ACCOUNT --admin)"
)
_WIRE_CODES: dict[type[AuthError], str] = {
    MissingToken: "MissingAuthenticationTokenException",
    IncompleteSignature: "IncompleteSignatureException",
    UnknownKey: "UnrecognizedClientException",
    SignatureMismatch: "InvalidSignatureException",
    SignatureExpired: "InvalidSignatureException",
    TokenExpired: "ExpiredTokenException",
    WrongScope: "InvalidSignatureException",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def signature_check(verifier: Verifier, platform: PlatformAuth) -> Middleware:
    """An aiohttp middleware that verifies each request and records its principal.

    The principal's account is the one the request acts in (`handling.tenant`).
    """

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        own = request.path.startswith(_OWN_PREFIX)
        if request.path in _OPEN or (own and _lamina_itself(platform, request)):
            return await handler(request)

        raw = RawRequest(request.method, request.raw_path, request.headers, await request.read())
        try:
            principal = verifier.verify(raw, _service(request))
        except AuthError as exc:
            log.debug("request refused %s %s: %s", request.method, request.raw_path, exc)
            raise SignatureRefused(_WIRE_CODES[type(exc)], str(exc)) from exc

        admin = principal.session is None and platform.is_admin(principal.access_key_id)
        if own and not admin:
            log.info("own endpoint refused key=%s %s", principal.access_key_id, request.path)
            raise AccessDenied(_NOT_ADMIN)
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate


def _lamina_itself(platform: PlatformAuth, request: web.Request) -> bool:
    """A request from Lamina's own parts, or a code download by a link GetFunction gave."""
    if platform.is_platform(request.headers.get(TOKEN_HEADER)):
        return True
    if request.path.startswith(_CODE_PREFIX):
        return platform.code_query_valid(request.path.removeprefix(_CODE_PREFIX), request.query)
    return False


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]  # type: ignore[no-any-return]


def _service(request: web.Request) -> str:
    """The service a request is for: CloudWatch Logs' JSON targets, or Lambda's REST paths."""
    target = request.headers.get("X-Amz-Target", "")
    return "logs" if target.startswith("Logs_") else "lambda"
