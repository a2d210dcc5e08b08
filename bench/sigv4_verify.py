"""Cost of verifying one request's SigV4 signature in the frontend, key store included.

A botocore-signed Invoke request is verified against a real key store (SQLite lookup and
Fernet decryption of the secret) in a temporary data directory. Prints microseconds per
request.
"""

from __future__ import annotations

import argparse
import tempfile
import timeit
from pathlib import Path

from lamina.auth import KeyStore, RawRequest, Verifier
from lamina.auth.signing import signed_headers
from lamina.clock import SystemClock

PATH = "/2015-03-31/functions/noop/invocations"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        store = KeyStore(Path(data_dir))
        store.ensure_default(enabled=True)
        url = f"http://127.0.0.1:9000{PATH}"
        headers = signed_headers("POST", url, b"{}", ("test", "test"), "us-east-1")
        headers["Host"] = "127.0.0.1:9000"
        request = RawRequest("POST", PATH, headers, b"{}")
        verifier = Verifier(store.secret, SystemClock(), "us-east-1")

        seconds = timeit.timeit(lambda: verifier.verify(request, "lambda"), number=args.requests)
        store.close()
    print(f"{args.requests} verifications: {seconds / args.requests * 1e6:.1f} us per request")


if __name__ == "__main__":
    main()
