"""The control plane through boto3 against a running Lamina: create, read, list, update, delete,
reserved concurrency, account settings, and what survives a restart."""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from tests.conftest import (
    PYTHON_RUNTIME,
    ROLE,
    Server,
    create_function,
    make_zip,
    start_server,
    stop_server,
    unique_name,
)

FAST = {"Delay": 0.1, "MaxAttempts": 100}
ECHO = "def handler(event, context):\n    return event\n"
CREATING = "The function is being created."
LAST_MODIFIED = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")
STALE_REVISION = (
    "The Revision Id provided does not match the latest Revision Id. Call the "
    "GetFunction/GetAlias API to retrieve the latest Revision Id"
)
BELOW_MINIMUM = (
    "Specified ReservedConcurrentExecutions for function decreases account's "
    "UnreservedConcurrentExecution below its minimum value of [100]."
)


def not_found(name: str) -> str:
    return f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{name}"


def code_sha256(zip_bytes: bytes) -> str:
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def status_of(response: dict[str, Any]) -> int:
    return int(response["ResponseMetadata"]["HTTPStatusCode"])


def new_function(lam: Any, zip_bytes: bytes, **extra: Any) -> dict[str, Any]:
    """CreateFunction with a fresh name; returns its response without waiting."""
    return lam.create_function(
        FunctionName=extra.pop("FunctionName", unique_name()),
        Role=ROLE,
        Handler="index.handler",
        Runtime=PYTHON_RUNTIME,
        Code={"ZipFile": zip_bytes},
        **extra,
    )


def wait_active(lam: Any, name: str) -> None:
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig=FAST)


def wait_updated(lam: Any, name: str) -> None:
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig=FAST)


def unreserved(lam: Any) -> int:
    return int(lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"])


# Create and read


def test_create_answers_201_with_a_pending_function_that_then_becomes_active(lam: Any) -> None:
    zip_bytes = make_zip({"index.py": ECHO})

    created = new_function(lam, zip_bytes, Description="first")
    wait_active(lam, created["FunctionName"])
    active = lam.get_function_configuration(FunctionName=created["FunctionName"])

    assert status_of(created) == 201
    assert created["State"] == "Pending"
    assert created["StateReason"] == CREATING
    assert created["StateReasonCode"] == "Creating"
    assert "LastUpdateStatus" not in created
    assert LAST_MODIFIED.fullmatch(created["LastModified"])
    assert active["State"] == "Active"
    assert active["LastUpdateStatus"] == "Successful"
    assert "StateReason" not in active and "StateReasonCode" not in active
    assert active["RevisionId"] != created["RevisionId"]
    assert active["Description"] == "first"


def test_create_fills_in_lambdas_defaults(lam: Any) -> None:
    name = unique_name()

    created = new_function(lam, make_zip({"index.py": ECHO}), FunctionName=name)

    assert created["FunctionArn"] == f"arn:aws:lambda:us-east-1:000000000000:function:{name}"
    assert created["Version"] == "$LATEST"
    assert created["Timeout"] == 3
    assert created["MemorySize"] == 128
    assert created["Description"] == ""
    # AWS shows no Environment for a function created without one (its recorded answers).
    assert "Environment" not in created
    assert created["Architectures"] == ["x86_64"]
    assert created["EphemeralStorage"] == {"Size": 512}
    assert created["TracingConfig"] == {"Mode": "PassThrough"}
    assert created["PackageType"] == "Zip"
    assert created["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    assert created["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"}


def test_get_function_returns_the_configuration_and_a_download_of_the_same_zip(
    lam: Any,
) -> None:
    zip_bytes = make_zip({"index.py": ECHO, "lib/data.txt": "payload"})
    name = new_function(lam, zip_bytes, MemorySize=256, Timeout=7)["FunctionName"]
    wait_active(lam, name)

    got = lam.get_function(FunctionName=name)
    download = requests.get(got["Code"]["Location"], timeout=30)

    assert status_of(got) == 200
    assert got["Code"]["RepositoryType"] == "S3"
    assert download.status_code == 200
    assert download.content == zip_bytes
    configuration = got["Configuration"]
    assert configuration["FunctionName"] == name
    assert configuration["CodeSha256"] == code_sha256(zip_bytes)
    assert configuration["CodeSize"] == len(zip_bytes)
    assert (configuration["MemorySize"], configuration["Timeout"]) == (256, 7)
    assert configuration["Runtime"] == PYTHON_RUNTIME
    assert configuration["Role"] == ROLE
    assert configuration["Handler"] == "index.handler"


def test_get_function_configuration_is_the_configuration_get_function_returns(lam: Any) -> None:
    name = create_function(lam, ECHO, Environment={"Variables": {"GREETING": "hi"}})

    configuration = lam.get_function_configuration(FunctionName=name)
    whole = lam.get_function(FunctionName=name)

    configuration.pop("ResponseMetadata")
    assert configuration == whole["Configuration"]
    assert configuration["Environment"] == {"Variables": {"GREETING": "hi"}}


def test_a_function_can_be_named_by_its_arn_or_a_partial_arn(lam: Any) -> None:
    name = create_function(lam, ECHO)
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]

    by_arn = lam.get_function_configuration(FunctionName=arn)
    by_partial = lam.get_function_configuration(FunctionName=f"000000000000:function:{name}")

    assert by_arn["FunctionName"] == by_partial["FunctionName"] == name


# ListFunctions


@pytest.fixture(scope="module")
def listed(server: Server) -> Iterator[tuple[str, set[str]]]:
    """55 functions whose names share a prefix no other test uses."""
    lam: Any = server.client()
    prefix = unique_name("listing")
    zip_bytes = make_zip({"index.py": ECHO})
    names = {f"{prefix}-{index:02d}" for index in range(55)}
    for name in names:
        new_function(lam, zip_bytes, FunctionName=name)
    yield prefix, names
    for name in names:
        lam.delete_function(FunctionName=name)


def ours(functions: list[dict[str, Any]], prefix: str) -> list[str]:
    return [f["FunctionName"] for f in functions if f["FunctionName"].startswith(f"{prefix}-")]


def test_list_functions_pages_hold_at_most_50_and_markers_lead_through_every_function_once(
    lam: Any, listed: tuple[str, set[str]]
) -> None:
    prefix, names = listed
    pages: list[dict[str, Any]] = []

    marker: str | None = None
    for _ in range(1000):
        page = lam.list_functions(**({"Marker": marker} if marker else {}))
        pages.append(page)
        marker = page.get("NextMarker")
        if not marker:
            break
    else:
        pytest.fail("NextMarker never ran out")

    assert len(pages) >= 2
    assert all(len(page["Functions"]) <= 50 for page in pages)
    assert all(len(page["Functions"]) == 50 for page in pages[:-1])
    seen = Counter(name for page in pages for name in ours(page["Functions"], prefix))
    assert set(seen) == names
    assert set(seen.values()) == {1}


def test_max_items_shortens_a_page_but_never_lengthens_it_beyond_50(
    lam: Any, listed: tuple[str, set[str]]
) -> None:
    seven = lam.list_functions(MaxItems=7)
    hundred = lam.list_functions(MaxItems=100)
    rest = lam.list_functions(Marker=seven["NextMarker"], MaxItems=7)

    assert len(seven["Functions"]) == 7
    assert "NextMarker" in seven
    assert len(hundred["Functions"]) == 50
    assert "NextMarker" in hundred
    first = {f["FunctionName"] for f in seven["Functions"]}
    assert first.isdisjoint(f["FunctionName"] for f in rest["Functions"])


def test_the_boto3_paginator_yields_every_function_exactly_once(
    lam: Any, listed: tuple[str, set[str]]
) -> None:
    prefix, names = listed
    paginator = lam.get_paginator("list_functions")

    small_pages = list(paginator.paginate(PaginationConfig={"PageSize": 9}))
    everything = paginator.paginate().build_full_result()

    assert all(len(page["Functions"]) <= 9 for page in small_pages)
    for functions in ([f for p in small_pages for f in p["Functions"]], everything["Functions"]):
        seen = Counter(ours(functions, prefix))
        assert set(seen) == names
        assert set(seen.values()) == {1}


def test_listed_functions_leave_out_the_state_members(
    lam: Any, listed: tuple[str, set[str]]
) -> None:
    prefix, _ = listed

    functions = lam.get_paginator("list_functions").paginate().build_full_result()["Functions"]

    mine = [f for f in functions if f["FunctionName"].startswith(f"{prefix}-")]
    assert mine
    for member in ("State", "StateReason", "LastUpdateStatus", "RuntimeVersionConfig"):
        assert all(member not in f for f in mine), member
    assert all(f["Runtime"] == PYTHON_RUNTIME for f in mine)


# Updates


def test_update_configuration_is_in_progress_then_successful_with_the_new_values(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)
    before = lam.get_function_configuration(FunctionName=name)

    updated = lam.update_function_configuration(
        FunctionName=name,
        Description="changed",
        MemorySize=512,
        Timeout=10,
        Handler="index.other",
        Environment={"Variables": {"ENV_A": "a"}},
    )
    wait_updated(lam, name)
    after = lam.get_function_configuration(FunctionName=name)

    assert status_of(updated) == 200
    assert updated["LastUpdateStatus"] == "InProgress"
    assert updated["LastUpdateStatusReason"] == CREATING
    assert updated["LastUpdateStatusReasonCode"] == "Creating"
    assert updated["State"] == "Active"
    assert updated["RevisionId"] != before["RevisionId"]
    assert after["LastUpdateStatus"] == "Successful"
    assert "LastUpdateStatusReason" not in after
    assert after["RevisionId"] not in (before["RevisionId"], updated["RevisionId"])
    for response in (updated, after):
        assert response["Description"] == "changed"
        assert (response["MemorySize"], response["Timeout"]) == (512, 10)
        assert response["Handler"] == "index.other"
        assert response["Environment"] == {"Variables": {"ENV_A": "a"}}
        assert response["CodeSha256"] == before["CodeSha256"]
        assert response["Runtime"] == before["Runtime"]


def test_update_configuration_keeps_the_members_it_does_not_name(lam: Any) -> None:
    name = create_function(lam, ECHO, MemorySize=256, Environment={"Variables": {"AA": "1"}})

    lam.update_function_configuration(FunctionName=name, Timeout=20)
    wait_updated(lam, name)
    after = lam.get_function_configuration(FunctionName=name)

    assert after["Timeout"] == 20
    assert after["MemorySize"] == 256
    assert after["Environment"] == {"Variables": {"AA": "1"}}


def test_update_code_changes_the_code_sha256_to_the_base64_sha256_of_the_new_zip(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)
    before = lam.get_function_configuration(FunctionName=name)
    new_zip = make_zip({"index.py": "def handler(event, context):\n    return 2\n"})

    updated = lam.update_function_code(FunctionName=name, ZipFile=new_zip)
    wait_updated(lam, name)
    after = lam.get_function(FunctionName=name)

    assert updated["LastUpdateStatus"] == "InProgress"
    assert updated["CodeSha256"] == code_sha256(new_zip) != before["CodeSha256"]
    assert updated["CodeSize"] == len(new_zip)
    assert after["Configuration"]["LastUpdateStatus"] == "Successful"
    assert after["Configuration"]["CodeSha256"] == code_sha256(new_zip)
    assert requests.get(after["Code"]["Location"], timeout=30).content == new_zip


def test_an_update_naming_a_stale_revision_id_is_refused_with_412_and_changes_nothing(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)
    created = lam.get_function_configuration(FunctionName=name)
    stale = created["RevisionId"]
    lam.update_function_configuration(FunctionName=name, Description="moved on")
    wait_updated(lam, name)

    with pytest.raises(ClientError) as config_refused:
        lam.update_function_configuration(FunctionName=name, Timeout=30, RevisionId=stale)
    with pytest.raises(ClientError) as code_refused:
        lam.update_function_code(
            FunctionName=name, ZipFile=make_zip({"index.py": "x = 1\n"}), RevisionId=stale
        )

    for refused in (config_refused.value.response, code_refused.value.response):
        assert refused["Error"]["Code"] == "PreconditionFailedException"
        assert refused["Error"]["Message"] == STALE_REVISION
        assert status_of(refused) == 412
    after = lam.get_function_configuration(FunctionName=name)
    assert after["Timeout"] == 3
    assert after["CodeSha256"] == created["CodeSha256"]


def test_an_update_naming_the_current_revision_id_is_accepted(lam: Any) -> None:
    name = create_function(lam, ECHO)
    current = lam.get_function_configuration(FunctionName=name)["RevisionId"]

    updated = lam.update_function_configuration(FunctionName=name, Timeout=30, RevisionId=current)

    assert status_of(updated) == 200
    assert updated["Timeout"] == 30


def test_creating_a_function_that_exists_is_refused_with_409_and_keeps_the_first(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)
    first = lam.get_function_configuration(FunctionName=name)

    with pytest.raises(ClientError) as refused:
        new_function(
            lam, make_zip({"index.py": "x = 2\n"}), FunctionName=name, Description="second"
        )

    error = refused.value.response
    assert error["Error"]["Code"] == "ResourceConflictException"
    assert error["Error"]["Message"] == f"Function already exist: {name}"
    assert status_of(error) == 409
    kept = lam.get_function_configuration(FunctionName=name)
    assert kept["Description"] == ""
    assert (kept["CodeSha256"], kept["RevisionId"]) == (first["CodeSha256"], first["RevisionId"])


# Delete


def test_delete_answers_204_over_http_and_the_function_is_then_not_found(
    server: Server, lam: Any
) -> None:
    name = create_function(lam, ECHO)

    deleted = server.signed("DELETE", f"/2015-03-31/functions/{name}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    with pytest.raises(ClientError) as missing:
        lam.get_function(FunctionName=name)
    error = missing.value.response
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert error["Error"]["Message"] == not_found(name)
    assert status_of(error) == 404


def test_delete_through_boto3_reports_status_204(lam: Any) -> None:
    name = create_function(lam, ECHO)

    deleted = lam.delete_function(FunctionName=name)

    assert deleted["StatusCode"] == 204
    assert status_of(deleted) == 204
    with pytest.raises(ClientError) as missing:
        lam.get_function_configuration(FunctionName=name)
    assert missing.value.response["Error"]["Message"] == not_found(name)


def test_a_deleted_name_can_be_created_again(lam: Any) -> None:
    name = create_function(lam, ECHO)
    lam.delete_function(FunctionName=name)

    recreated = new_function(lam, make_zip({"index.py": ECHO}), FunctionName=name, Timeout=9)
    wait_active(lam, name)

    assert status_of(recreated) == 201
    assert lam.get_function_configuration(FunctionName=name)["Timeout"] == 9


# Reserved concurrency and account settings


def test_reserved_concurrency_is_absent_until_put_and_absent_again_after_delete(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)
    unreserved_before = unreserved(lam)

    unset = lam.get_function_concurrency(FunctionName=name)
    put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    read = lam.get_function_concurrency(FunctionName=name)
    unreserved_while_set = unreserved(lam)
    deleted = lam.delete_function_concurrency(FunctionName=name)
    after = lam.get_function_concurrency(FunctionName=name)

    assert status_of(unset) == 200
    assert "ReservedConcurrentExecutions" not in unset
    assert put["ReservedConcurrentExecutions"] == 5
    assert read["ReservedConcurrentExecutions"] == 5
    assert unreserved_while_set == unreserved_before - 5
    assert status_of(deleted) == 204
    assert "ReservedConcurrentExecutions" not in after
    assert unreserved(lam) == unreserved_before


def test_putting_reserved_concurrency_again_replaces_the_reservation(lam: Any) -> None:
    name = create_function(lam, ECHO)
    unreserved_before = unreserved(lam)

    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=7)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=2)

    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 2
    assert unreserved(lam) == unreserved_before - 2
    lam.delete_function(FunctionName=name)
    assert unreserved(lam) == unreserved_before


def test_a_reservation_leaving_fewer_than_100_unreserved_is_refused_with_aws_message(
    lam: Any,
) -> None:
    name = create_function(lam, ECHO)
    too_many = unreserved(lam) - 100 + 1

    with pytest.raises(ClientError) as refused:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=too_many)

    error = refused.value.response
    assert error["Error"]["Code"] == "InvalidParameterValueException"
    assert error["Error"]["Message"] == BELOW_MINIMUM
    assert status_of(error) == 400
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)


def test_a_reservation_leaving_exactly_100_unreserved_is_accepted(lam: Any) -> None:
    name = create_function(lam, ECHO)
    most = unreserved(lam) - 100

    try:
        put = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=most)
        left = unreserved(lam)
    finally:
        lam.delete_function_concurrency(FunctionName=name)

    assert put["ReservedConcurrentExecutions"] == most
    assert left == 100


def test_account_settings_report_lambdas_limits_and_this_accounts_usage(lam: Any) -> None:
    before = lam.get_account_settings()
    zip_bytes = make_zip({"index.py": ECHO, "pad.txt": "y" * 1000})
    name = new_function(lam, zip_bytes)["FunctionName"]

    during = lam.get_account_settings()
    lam.delete_function(FunctionName=name)
    after = lam.get_account_settings()

    assert during["AccountLimit"] == {
        "TotalCodeSize": 80530636800,
        "CodeSizeUnzipped": 262144000,
        "CodeSizeZipped": 52428800,
        "ConcurrentExecutions": 1000,
        "UnreservedConcurrentExecutions": before["AccountLimit"]["UnreservedConcurrentExecutions"],
    }
    usage_before, usage = before["AccountUsage"], during["AccountUsage"]
    assert usage["FunctionCount"] == usage_before["FunctionCount"] + 1
    assert usage["TotalCodeSize"] == usage_before["TotalCodeSize"] + len(zip_bytes)
    assert after["AccountUsage"] == usage_before


# Persistence


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers this test starts on tmp_path/data; whatever is still running is stopped."""
    started: list[Server] = []
    yield started
    for running in started:
        if running.process.poll() is None:
            stop_server(running)


def test_functions_and_reservations_survive_a_restart_on_the_same_data_dir(
    tmp_path: Path, own_server: list[Server]
) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    own_server.append(first)
    lam: Any = first.client()
    zip_bytes = make_zip({"index.py": ECHO})
    name = new_function(lam, zip_bytes, Timeout=11, Environment={"Variables": {"KEY": "v"}})[
        "FunctionName"
    ]
    wait_active(lam, name)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    before = lam.get_function_configuration(FunctionName=name)

    assert stop_server(first) == 0
    second = start_server(data)
    own_server.append(second)
    again: Any = second.client()
    after = again.get_function(FunctionName=name)

    before.pop("ResponseMetadata")
    assert after["Configuration"] == before
    assert requests.get(after["Code"]["Location"], timeout=30).content == zip_bytes
    assert again.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    settings = again.get_account_settings()
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 1000 - 3
    assert settings["AccountUsage"]["FunctionCount"] == 1


def test_two_functions_with_the_same_zip_share_one_stored_blob(
    tmp_path: Path, own_server: list[Server]
) -> None:
    data = tmp_path / "data"
    running = start_server(data)
    own_server.append(running)
    lam: Any = running.client()
    zip_bytes = make_zip({"index.py": ECHO})
    other_zip = make_zip({"index.py": "def handler(event, context):\n    return 1\n"})

    new_function(lam, zip_bytes)
    new_function(lam, zip_bytes)
    blobs_for_one_zip = sorted(p.name for p in (data / "code").iterdir())
    new_function(lam, other_zip)
    blobs_for_two_zips = sorted(p.name for p in (data / "code").iterdir())

    digest = hashlib.sha256(zip_bytes).hexdigest()
    assert blobs_for_one_zip == [f"{digest}.zip"]
    assert len(blobs_for_two_zips) == 2
    assert (data / "code" / f"{digest}.zip").read_bytes() == zip_bytes
