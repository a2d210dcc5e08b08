"""The frontend's door: every API request proves its sender with SigV4 before it is served.

Lamina's own endpoints under /_lamina (health, state, code downloads for workers) are not
part of the AWS API and are left out; they listen where the API listens.
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
    UnknownKey,
    WrongScope,
)
from lamina.frontend.errors import SignatureRefused

log = logging.getLogger(__name__)

PRINCIPAL = "lamina.principal"
_UNAUTHENTICATED_PREFIX = "/_lamina/"
_WIRE_CODES: dict[type[AuthError], str] = {
    MissingToken: "MissingAuthenticationTokenException",
    IncompleteSignature: "IncompleteSignatureException",
    UnknownKey: "UnrecognizedClientException",
    SignatureMismatch: "InvalidSignatureException",
    SignatureExpired: "InvalidSignatureException",
    WrongScope: "InvalidSignatureException",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def signature_check(verifier: Verifier) -> Middleware:
    """An aiohttp middleware that verifies each API request and records its principal.

    The principal's account is the one the request acts in (`handling.tenant`).
    """

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(_UNAUTHENTICATED_PREFIX):
            return await handler(request)

        raw = RawRequest(request.method, request.raw_path, request.headers, await request.read())
        try:
            principal = verifier.verify(raw, _service(request))
        except AuthError as exc:
            log.debug("request refused %s %s: %s", request.method, request.raw_path, exc)
            raise SignatureRefused(_WIRE_CODES[type(exc)], str(exc)) from exc
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate


def principal(request: web.Request) -> Principal:
    return request[PRINCIPAL]  # type: ignore[no-any-return]


def _service(request: web.Request) -> str:
    """The service a request is for: CloudWatch Logs' JSON targets, or Lambda's REST paths."""
    target = request.headers.get("X-Amz-Target", "")
    return "logs" if target.startswith("Logs_") else "lambda"
