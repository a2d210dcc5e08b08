"""The auth package's error tree; the frontend gives each AWS's wire name.

AuthError
├── MissingToken          no Authorization header nor presigned query
├── IncompleteSignature   an Authorization header or query missing parts, or malformed
├── UnknownKey            an access key id that is not ours, or is disabled
├── SignatureMismatch     the signature does not match the one we compute
├── SignatureExpired      signed outside the allowed clock skew, or past its expiry
├── TokenExpired          a function's credentials past their expiry, or their sandbox gone
└── WrongScope            a credential scope for another service, or a date mismatch
"""

from __future__ import annotations


class AuthError(Exception):
    """A request whose sender Lamina cannot establish."""


class MissingToken(AuthError):
    pass


class IncompleteSignature(AuthError):
    pass


class UnknownKey(AuthError):
    pass


class SignatureMismatch(AuthError):
    pass


class SignatureExpired(AuthError):
    pass


class TokenExpired(AuthError):
    pass


class WrongScope(AuthError):
    pass


class AccountError(Exception):
    """An admin operation on accounts or keys that cannot be done (unknown id, duplicate)."""
