"""Versions, aliases and safe updates through boto3, as deploy tools use them on Lambda."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function, make_zip, start_server, stop_server

FAST = {"Delay": 0.1, "MaxAttempts": 300}


def returns(value: str) -> str:
    return f"def handler(event, context):\n    return {value!r}\n"


def new_code(value: str, init_seconds: float = 0) -> bytes:
    # A module that sleeps at import keeps the update in progress that long: the update is
    # over once a sandbox of the new code has initialised.
    prelude = f"import time\ntime.sleep({init_seconds})\n" if init_seconds else ""
    return make_zip({"index.py": prelude + returns(value)})


def run(lam: Any, name: str, qualifier: str | None = None) -> tuple[Any, str]:
    """The result of one invoke, and the version that ran it."""
    params = {"FunctionName": name}
    if qualifier is not None:
        params["Qualifier"] = qualifier
    response = lam.invoke(**params)
    return json.loads(response["Payload"].read()), response["ExecutedVersion"]


def error_of(call: Any, **params: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call(**params)
    return refused.value.response


def wait_updated(lam: Any, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST)


def test_an_alias_keeps_running_its_version_after_latest_gets_new_code(lam: Any) -> None:
    name = create_function(lam, returns("one"))
    v1 = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=v1)

    lam.update_function_code(FunctionName=name, ZipFile=new_code("two"))
    wait_updated(lam, name)

    assert run(lam, name, "live") == ("one", "1")
    assert run(lam, name) == ("two", "$LATEST")
    assert run(lam, name, "1") == ("one", "1")
    assert run(lam, f"{name}:live") == ("one", "1")


def test_an_alias_with_10_percent_on_v2_sends_about_a_tenth_of_2000_invokes_there(
    lam: Any,
) -> None:
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=new_code("two"))
    wait_updated(lam, name)
    lam.publish_version(FunctionName=name)
    lam.create_alias(
        FunctionName=name,
        Name="canary",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: run(lam, name, "canary"), range(2000)))

    counts = Counter(version for _, version in results)
    assert set(counts) == {"1", "2"}
    assert abs(counts["2"] / 2000 - 0.10) <= 0.03
    assert all(answer == {"1": "one", "2": "two"}[version] for answer, version in results)


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, so a slow update does not hold sandboxes of the shared one."""
    running = start_server(tmp_path_factory.mktemp("updates") / "data", "--workers", "1")
    yield running
    stop_server(running)


def test_an_update_while_one_is_in_progress_is_409_and_the_old_code_answers_meanwhile(
    quiet_server: Server,
) -> None:
    lam: Any = quiet_server.client()
    name = create_function(lam, returns("old"))
    assert run(lam, name) == ("old", "$LATEST")

    updating = lam.update_function_code(FunctionName=name, ZipFile=new_code("new", 4))
    during = run(lam, name)
    second = error_of(lam.update_function_configuration, FunctionName=name, Timeout=9)
    publish = error_of(lam.publish_version, FunctionName=name)
    state = lam.get_function_configuration(FunctionName=name)
    wait_updated(lam, name)
    after = run(lam, name)

    assert updating["LastUpdateStatus"] == "InProgress"
    assert during == ("old", "$LATEST")
    assert state["LastUpdateStatus"] == "InProgress"
    assert state["CodeSha256"] == updating["CodeSha256"]
    for refused in (second, publish):
        assert refused["ResponseMetadata"]["HTTPStatusCode"] == 409
        assert refused["Error"]["Code"] == "ResourceConflictException"
        assert refused["Error"]["Message"] == (
            "The operation cannot be performed at this time. An update is in progress for "
            f"resource: {updating['FunctionArn']}"
        )
    assert after == ("new", "$LATEST")
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 3


def test_publishing_twice_without_a_change_answers_the_same_version(lam: Any) -> None:
    name = create_function(lam, returns("one"))

    first = lam.publish_version(FunctionName=name, Description="first")
    again = lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Timeout=7)
    wait_updated(lam, name)
    changed = lam.publish_version(FunctionName=name)

    assert (first["Version"], again["Version"], changed["Version"]) == ("1", "1", "2")
    assert again["RevisionId"] == first["RevisionId"]
    assert first["Description"] == "first"
    assert first["FunctionArn"].endswith(f":{name}:1")
    assert (first["State"], first["LastUpdateStatus"]) == ("Active", "Successful")
    assert changed["Timeout"] == 7
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]


def test_a_version_is_a_snapshot_that_later_updates_do_not_touch(lam: Any) -> None:
    name = create_function(lam, returns("one"), Environment={"Variables": {"KEY": "a"}})
    v1 = lam.publish_version(FunctionName=name)

    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"KEY": "b"}})
    wait_updated(lam, name)

    kept = lam.get_function_configuration(FunctionName=name, Qualifier="1")
    assert kept["Environment"] == {"Variables": {"KEY": "a"}}
    assert kept["RevisionId"] == v1["RevisionId"]
    assert lam.get_function(FunctionName=f"{name}:1")["Configuration"]["Version"] == "1"


def test_publish_guards_refuse_a_stale_revision_or_another_code_sha256(lam: Any) -> None:
    name = create_function(lam, returns("one"))

    stale = error_of(lam.publish_version, FunctionName=name, RevisionId="stale")
    other = error_of(lam.publish_version, FunctionName=name, CodeSha256="abc")

    assert stale["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert stale["Error"]["Code"] == "PreconditionFailedException"
    assert other["Error"]["Code"] == "InvalidParameterValueException"
    assert other["Error"]["Message"].startswith("CodeSHA256 (abc) is different from current")


def test_a_version_can_be_deleted_alone_but_latest_cannot(lam: Any) -> None:
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Timeout=5)
    wait_updated(lam, name)
    lam.publish_version(FunctionName=name)

    lam.delete_function(FunctionName=name, Qualifier="1")
    latest = error_of(lam.delete_function, FunctionName=name, Qualifier="$LATEST")
    gone = error_of(lam.invoke, FunctionName=name, Qualifier="1")
    lam.update_function_configuration(FunctionName=name, Timeout=6)
    wait_updated(lam, name)

    assert latest["Error"]["Message"] == (
        "$LATEST version cannot be deleted without deleting the function."
    )
    assert gone["Error"]["Code"] == "ResourceNotFoundException"
    # Numbers are never reused: the next version after 2 is 3 even though 1 is gone.
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
    assert [
        v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]
    ] == [
        "$LATEST",
        "2",
        "3",
    ]


def test_a_version_an_alias_points_at_cannot_be_deleted(lam: Any) -> None:
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    refused = error_of(lam.delete_function, FunctionName=name, Qualifier="1")

    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert "[live]" in refused["Error"]["Message"]
    assert run(lam, name, "live") == ("one", "1")


def test_an_alias_update_with_a_stale_revision_id_is_412_and_changes_nothing(lam: Any) -> None:
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    moved = lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="$LATEST", RevisionId=created["RevisionId"]
    )

    stale = error_of(
        lam.update_alias, FunctionName=name, Name="live", RevisionId=created["RevisionId"]
    )

    assert moved["RevisionId"] != created["RevisionId"]
    assert stale["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "$LATEST"
    assert run(lam, name, "live") == ("one", "$LATEST")


def test_a_qualifier_in_the_name_that_conflicts_with_qualifier_is_400(lam: Any) -> None:
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]

    refused = error_of(lam.invoke, FunctionName=f"{arn}:1", Qualifier="$LATEST")

    assert refused["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused["Error"]["Message"] == (
        "The derived qualifier from the function name does not match the specified qualifier."
    )
    assert run(lam, f"{arn}:1", "1") == ("one", "1")


def test_a_versioned_invoke_passes_the_qualified_arn_to_the_function(lam: Any) -> None:
    code = "def handler(event, context):\n    return context.invoked_function_arn\n"
    name = create_function(lam, code)
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")

    answer, version = run(lam, name, "live")

    assert answer.endswith(f":function:{name}:live")
    assert version == "1"


def test_create_with_publish_answers_a_pending_version_that_becomes_active(lam: Any) -> None:
    name = create_function(lam, returns("one"), wait=False, Publish=True)

    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, Qualifier="1", WaiterConfig=FAST)

    assert run(lam, name, "1") == ("one", "1")


def test_versions_and_aliases_survive_a_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data")
    lam: Any = first.client()
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="the one")
    lam.tag_resource(Resource=lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"],
                     Tags={"team": "a"})  # fmt: skip
    stop_server(first)

    second = start_server(tmp_path / "data")
    try:
        lam = second.client()
        alias = lam.get_alias(FunctionName=name, Name="live")
        assert alias["Description"] == "the one"
        assert run(lam, name, "live") == ("one", "1")
        assert lam.get_function(FunctionName=name)["Tags"] == {"team": "a"}
        assert lam.publish_version(FunctionName=name)["Version"] == "1"
    finally:
        stop_server(second)


def test_an_update_interrupted_by_a_stop_is_finished_after_the_restart(tmp_path: Path) -> None:
    first = start_server(tmp_path / "data")
    lam: Any = first.client()
    name = create_function(lam, returns("old"))
    lam.update_function_code(FunctionName=name, ZipFile=new_code("new", 2))
    stop_server(first)

    second = start_server(tmp_path / "data")
    try:
        lam = second.client()
        wait_updated(lam, name)
        assert run(lam, name) == ("new", "$LATEST")
    finally:
        stop_server(second)


def test_an_update_naming_a_version_changes_latest_and_leaves_the_version_alone(
    lam: Any,
) -> None:
    name = create_function(lam, returns("one"))
    lam.publish_version(FunctionName=name)

    updated = lam.update_function_configuration(FunctionName=f"{name}:1", Timeout=8)
    wait_updated(lam, name)

    assert (updated["Version"], updated["Timeout"]) == ("$LATEST", 8)
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["Timeout"] == 3
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 8
