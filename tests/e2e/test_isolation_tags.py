"""The tags `lamina:isolation` and `lamina:network` through versions, restarts and retags.

A function's backend and network mode are part of what a published version runs; the tags
are checked when they are set, and only then.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina.sandbox.backend import ISOLATION_TAG
from tests.conftest import Server, create_function, start_server, stop_server

pytestmark = pytest.mark.skipif(
    shutil.which("runsc") is None or os.geteuid() != 0,
    reason="these tests need runsc (apt-get install runsc) and root",
)

NETWORK_TAG = "lamina:network"

# Which backend and network a sandbox runs under, as the function sees them.
PROBE = (
    "import os, socket\n"
    "def handler(event, context):\n"
    "    return {'kernel': os.uname().release,\n"
    "            'interfaces': sorted(n for _, n in socket.if_nameindex()),\n"
    "            'home': os.environ.get('HOME')}\n"
)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("isolation-tags") / "data"
    running = start_server(data_dir, "--workers", "1")
    yield running
    stop_server(running)


@pytest.fixture
def lam(platform: Server) -> Any:
    return platform.client()


def seen(lam: Any, name: str, qualifier: str | None = None) -> dict:
    extra = {"Qualifier": qualifier} if qualifier else {}
    reply = lam.invoke(FunctionName=name, Payload=b"{}", **extra)
    body = json.loads(reply["Payload"].read())
    assert "FunctionError" not in reply, body
    return body


def host_kernel() -> str:
    return os.uname().release


def test_publishing_after_the_backend_tag_changed_publishes_a_version_that_runs_it(
    lam: Any,
) -> None:
    name = create_function(lam, PROBE)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    first = lam.publish_version(FunctionName=name)["Version"]

    lam.tag_resource(Resource=arn, Tags={ISOLATION_TAG: "gvisor"})
    second = lam.publish_version(FunctionName=name)["Version"]

    assert second != first
    assert seen(lam, name, first)["kernel"] == host_kernel()
    assert seen(lam, name, second)["kernel"] != host_kernel()
    assert seen(lam, name)["kernel"] != host_kernel()


def test_publishing_after_the_network_tag_changed_publishes_a_version_that_has_it(
    lam: Any,
) -> None:
    name = create_function(lam, PROBE)
    arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    first = lam.publish_version(FunctionName=name)["Version"]

    lam.tag_resource(Resource=arn, Tags={NETWORK_TAG: "none"})
    second = lam.publish_version(FunctionName=name)["Version"]
    lam.untag_resource(Resource=arn, TagKeys=[NETWORK_TAG])
    third = lam.publish_version(FunctionName=name)["Version"]

    assert len({first, second, third}) == 3
    assert seen(lam, name, first)["interfaces"] != ["lo"]
    assert seen(lam, name, second)["interfaces"] == ["lo"]
    assert seen(lam, name, third)["interfaces"] != ["lo"]


def test_publishing_twice_with_no_change_still_answers_the_same_version(lam: Any) -> None:
    name = create_function(lam, PROBE, Tags={ISOLATION_TAG: "gvisor"})

    first = lam.publish_version(FunctionName=name)["Version"]
    again = lam.publish_version(FunctionName=name)["Version"]

    assert again == first


def test_a_gvisor_sandbox_sees_no_home_variable_as_a_bubblewrap_one_and_lambda(
    lam: Any,
) -> None:
    under_gvisor = create_function(lam, PROBE, Tags={ISOLATION_TAG: "gvisor"})
    under_namespace = create_function(lam, PROBE)
    with_home = create_function(
        lam,
        PROBE,
        Tags={ISOLATION_TAG: "gvisor"},
        Environment={"Variables": {"HOME": "/tmp"}},
    )

    assert seen(lam, under_namespace)["home"] is None
    assert seen(lam, under_gvisor)["home"] is None
    assert seen(lam, with_home)["home"] == "/tmp"


def test_other_tags_change_after_the_tagged_backend_is_no_longer_offered(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    first = start_server(data_dir, "--workers", "1", "--isolation", "process")
    try:
        name = create_function(first.client(), PROBE, Tags={ISOLATION_TAG: "process"})
    finally:
        stop_server(first)

    # The same data directory, now with workers that do not offer `process`.
    second = start_server(data_dir, "--workers", "1")
    try:
        lam = second.client()
        arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]

        lam.tag_resource(Resource=arn, Tags={"team": "blue"})
        lam.untag_resource(Resource=arn, TagKeys=["team"])
        with pytest.raises(lam.exceptions.InvalidParameterValueException):
            lam.tag_resource(Resource=arn, Tags={ISOLATION_TAG: "process"})
        assert lam.list_tags(Resource=arn)["Tags"] == {ISOLATION_TAG: "process"}

        lam.untag_resource(Resource=arn, TagKeys=[ISOLATION_TAG])
        assert seen(lam, name)["kernel"] == host_kernel()
    finally:
        stop_server(second)


# Creating a file in the code directory, the write Lambda answers with EROFS.
WRITE_CODE = (
    "import errno\n"
    "def handler(event, context):\n"
    "    try:\n"
    "        open('/var/task/new.txt', 'w').close()\n"
    "    except OSError as error:\n"
    "        return errno.errorcode[error.errno]\n"
    "    return 'written'\n"
)


def test_writing_the_code_fails_with_erofs_under_bubblewrap_as_on_lambda(lam: Any) -> None:
    name = create_function(lam, WRITE_CODE)

    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "EROFS"


@pytest.mark.xfail(
    strict=True,
    reason="gVisor's kernel checks file permissions before the read-only mount, so creating "
    "a file in the root-owned /var/task fails with EACCES, not Lambda's EROFS",
)
def test_writing_the_code_fails_with_erofs_under_gvisor_as_on_lambda(lam: Any) -> None:
    name = create_function(lam, WRITE_CODE, Tags={ISOLATION_TAG: "gvisor"})

    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "EROFS"
