"""A sandbox's network modes: `outbound` reaches other hosts but never the host's loopback;
`none` has the sandbox's loopback alone. In both the Runtime API answers inside.

The only host reached is one this module makes: a network namespace with a veth link to
this one, serving HTTP on its own address.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function
from tests.e2e.hosts import require_root_and_iproute, run_ip

ISOLATION_BACKENDS = ("namespace", "gvisor")
SUBNET = f"10.214.{os.getpid() % 250}"

FETCH = """
import json, os, socket, urllib.request
def handler(event, context):
    result = {"api": os.environ["AWS_LAMBDA_RUNTIME_API"]}
    try:
        with urllib.request.urlopen(event["url"], timeout=5) as response:
            result["body"] = response.read().decode()
    except OSError as error:
        reason = getattr(error, "reason", error)
        result["errno"] = getattr(reason, "errno", None)
    try:
        socket.create_connection(("10.0.2.2", event["host_port"]), timeout=2).close()
        result["host_loopback"] = 0
    except OSError as error:
        result["host_loopback"] = error.errno
    return result
"""


@dataclass
class RemoteHost:
    url: str


@pytest.fixture(scope="module")
def remote_host() -> Iterator[RemoteHost]:
    """An HTTP server on an address of a network namespace made here, reachable from the
    host through a veth pair and from nowhere else."""
    require_root_and_iproute()
    namespace, outer, inner = f"l3n{os.getpid()}", f"l3h{os.getpid()}", f"l3i{os.getpid()}"
    run_ip("netns", "add", namespace)
    server = None
    try:
        run_ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        run_ip("link", "set", inner, "netns", namespace)
        run_ip("addr", "add", f"{SUBNET}.1/30", "dev", outer)
        run_ip("link", "set", outer, "up")
        run_ip("-n", namespace, "addr", "add", f"{SUBNET}.2/30", "dev", inner)
        run_ip("-n", namespace, "link", "set", inner, "up")
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{namespace}", sys.executable, "-c",
             "import http.server as h\n"
             "class H(h.BaseHTTPRequestHandler):\n"
             "    def do_GET(self):\n"
             "        self.send_response(200); self.end_headers()\n"
             "        self.wfile.write(b'from the remote host')\n"
             f"h.HTTPServer(('{SUBNET}.2', 8080), H).serve_forever()\n"],
        )  # fmt: skip
        url = f"http://{SUBNET}.2:8080/"
        _wait_for(url)
        yield RemoteHost(url)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def _wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url, timeout=1)
            return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, f"{url} never answered"
            time.sleep(0.05)


def fetch(lam: object, server: Server, remote: RemoteHost, backend: str, **tags: str) -> dict:
    name = create_function(lam, FETCH, Tags={"lamina:isolation": backend, **tags})
    event = {"url": remote.url, "host_port": int(server.url.rsplit(":", 1)[1])}
    response = lam.invoke(  # type: ignore[attr-defined]
        FunctionName=name, Payload=json.dumps(event).encode()
    )
    assert "FunctionError" not in response
    return json.loads(response["Payload"].read())


# How the host's loopback refuses a sandbox: slirp4netns answers the kernel's connect with
# an unreachable network; gVisor's netstack gets no answer, so its connect times out (None).
HOST_LOOPBACK_REFUSED = {
    "namespace": (errno.ENETUNREACH, errno.ECONNREFUSED),
    "gvisor": (None,),
}
# A sandbox without a network: the kernel has no route; gVisor's netstack no host to send to.
NO_ROUTE = {"namespace": errno.ENETUNREACH, "gvisor": errno.EHOSTUNREACH}


@pytest.mark.parametrize("backend", ISOLATION_BACKENDS)
def test_an_outbound_function_reaches_another_host_but_not_the_hosts_loopback(
    lam: object, server: Server, remote_host: RemoteHost, backend: str
) -> None:
    result = fetch(lam, server, remote_host, backend)

    assert result["body"] == "from the remote host"
    assert result["host_loopback"] in HOST_LOOPBACK_REFUSED[backend]
    assert result["api"] == "127.0.0.1:9001"


@pytest.mark.parametrize("backend", ISOLATION_BACKENDS)
def test_a_function_without_network_reaches_no_host(
    lam: object, server: Server, remote_host: RemoteHost, backend: str
) -> None:
    result = fetch(lam, server, remote_host, backend, **{"lamina:network": "none"})

    assert result["errno"] == NO_ROUTE[backend]
    assert result["host_loopback"] == NO_ROUTE[backend]
    assert result["api"] == "127.0.0.1:9001"


def test_an_unknown_network_mode_is_refused_with_the_allowed_ones(lam: object) -> None:
    with pytest.raises(ClientError) as refused:
        create_function(lam, FETCH, Tags={"lamina:network": "everything"})

    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert error["Message"] == "Tag lamina:network must be outbound or none, not 'everything'"
