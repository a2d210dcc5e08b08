"""Who sent a request: accounts, their access keys, and SigV4 verification."""

from lamina.auth.errors import AuthError
from lamina.auth.keys import DEFAULT_ACCOUNT, AccessKey, KeyStore
from lamina.auth.sigv4 import Principal, RawRequest, Verifier

__all__ = [
    "DEFAULT_ACCOUNT",
    "AccessKey",
    "AuthError",
    "KeyStore",
    "Principal",
    "RawRequest",
    "Verifier",
]
