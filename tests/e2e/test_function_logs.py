"""Function logs as Lambda keeps them, read through the CloudWatch Logs API on Lamina's
endpoint: by the AWS CLI (`aws logs`), by boto3's `logs` client and by `lamina logs`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import Server, create_function
from tests.e2e.test_aws_cli import cli_env

AWS = Path(sys.executable).parent / "aws"
LAMINA = Path(sys.executable).parent / "lamina"

GREETER = """
import logging
logging.getLogger().setLevel(logging.INFO)

def handler(event, context):
    print("greeting", event["name"])
    logging.warning("careful %s", event["name"])
    return "ok"
"""


def aws_logs(server: Server, tmp_path: Path, *args: str) -> Any:
    result = subprocess.run(
        [str(AWS), "--endpoint-url", server.url, "--output", "json", "logs", *args],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def greeted(lam: object, server: Server, *names: str) -> str:
    function = create_function(lam, GREETER)
    for name in names:
        lam.invoke(FunctionName=function, Payload=json.dumps({"name": name}))  # type: ignore[attr-defined]
    return function


def test_aws_logs_filter_log_events_finds_a_functions_lines_by_pattern(
    lam: object, server: Server, tmp_path: Path
) -> None:
    name = greeted(lam, server, "ada", "grace")

    every = aws_logs(
        server, tmp_path, "filter-log-events", "--log-group-name", f"/aws/lambda/{name}"
    )
    matched = aws_logs(
        server, tmp_path, "filter-log-events",
        "--log-group-name", f"/aws/lambda/{name}", "--filter-pattern", '"greeting grace"',
    )  # fmt: skip

    messages = [e["message"] for e in every["events"]]
    assert [m.split(" ")[0] for m in messages if not m.startswith("[")] == [
        "INIT_START", "START", "greeting", "END", "REPORT", "START", "greeting", "END", "REPORT",
    ]  # fmt: skip
    assert messages[0].startswith(f"INIT_START Runtime Version: python:3.{sys.version_info[1]}.")
    assert "\tRuntime Version ARN: arn:aws:lambda:us-east-1::runtime:" in messages[0]
    assert any(m.startswith("[WARNING]\t") and m.endswith("\tcareful ada") for m in messages)
    assert [e["message"] for e in matched["events"]] == ["greeting grace"]
    event = matched["events"][0]
    assert event["logStreamName"].startswith(time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()))
    assert abs(event["timestamp"] - time.time() * 1000) < 60_000
    assert event["ingestionTime"] >= event["timestamp"]


def test_filter_patterns_combine_terms_alternatives_and_exclusions(
    lam: object, server: Server
) -> None:
    # Names with letters beyond hex, which no request id in a START or REPORT line can hold.
    name = greeted(lam, server, "olga", "grace", "linus")
    logs = server.logs()

    def messages(pattern: str) -> list[str]:
        found = logs.filter_log_events(  # type: ignore[attr-defined]
            logGroupName=f"/aws/lambda/{name}", filterPattern=pattern
        )
        return [e["message"] for e in found["events"]]

    assert messages("greeting olga") == ["greeting olga"]
    assert messages("?olga ?linus") == [m for m in messages("") if "olga" in m or "linus" in m]
    assert len(messages("?olga ?linus")) == 4
    assert messages("greeting -olga -grace") == ["greeting linus"]
    with pytest.raises(ClientError) as refused:
        messages("[ip, user, ...]")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"


def test_filter_log_events_takes_a_time_range_and_pages_with_tokens(
    lam: object, server: Server
) -> None:
    name = greeted(lam, server, "a", "b", "c")
    logs = server.logs()
    group = f"/aws/lambda/{name}"
    every = logs.filter_log_events(logGroupName=group)["events"]  # type: ignore[attr-defined]

    pages, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = logs.filter_log_events(logGroupName=group, limit=5, **extra)  # type: ignore[attr-defined]
        pages.append(page["events"])
        token = page.get("nextToken")
        if token is None:
            break
    middle = every[len(every) // 2]["timestamp"]
    later = logs.filter_log_events(logGroupName=group, startTime=middle)["events"]  # type: ignore[attr-defined]
    earlier = logs.filter_log_events(logGroupName=group, endTime=middle - 1)["events"]  # type: ignore[attr-defined]

    assert [e["eventId"] for page in pages for e in page] == [e["eventId"] for e in every]
    assert all(len(page) <= 5 for page in pages) and len(pages) >= 3
    assert all(e["timestamp"] >= middle for e in later)
    assert all(e["timestamp"] < middle for e in earlier)
    assert len(later) + len(earlier) == len(every)


def test_describe_log_groups_and_streams_show_one_stream_per_sandbox(
    lam: object, server: Server, tmp_path: Path
) -> None:
    name = greeted(lam, server, "warm", "again")
    group = f"/aws/lambda/{name}"

    groups = aws_logs(server, tmp_path, "describe-log-groups", "--log-group-name-prefix", group)
    streams = aws_logs(server, tmp_path, "describe-log-streams", "--log-group-name", group)

    assert [g["logGroupName"] for g in groups["logGroups"]] == [group]
    assert (
        groups["logGroups"][0]["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{group}:*"
    )
    assert groups["logGroups"][0]["storedBytes"] > 0
    (stream,) = streams["logStreams"]
    assert stream["logStreamName"].endswith("]" + stream["logStreamName"].split("]")[1])
    assert stream["firstEventTimestamp"] <= stream["lastEventTimestamp"]


def test_get_log_events_reads_a_stream_forward_and_backward_with_tokens(
    lam: object, server: Server
) -> None:
    name = greeted(lam, server, "one", "two", "three")
    logs = server.logs()
    group = f"/aws/lambda/{name}"
    (stream,) = logs.describe_log_streams(logGroupName=group)["logStreams"]  # type: ignore[attr-defined]
    read = {"logGroupName": group, "logStreamName": stream["logStreamName"]}

    newest = logs.get_log_events(limit=5, **read)  # type: ignore[attr-defined]
    before = logs.get_log_events(limit=4, nextToken=newest["nextBackwardToken"], **read)  # type: ignore[attr-defined]
    head = logs.get_log_events(startFromHead=True, limit=4, **read)  # type: ignore[attr-defined]
    after_head = logs.get_log_events(limit=100, nextToken=head["nextForwardToken"], **read)  # type: ignore[attr-defined]
    at_end = logs.get_log_events(nextToken=after_head["nextForwardToken"], **read)  # type: ignore[attr-defined]

    assert [e["message"].split(" ")[0].split("\t")[0] for e in newest["events"]] == [
        "START", "greeting", "[WARNING]", "END", "REPORT"
    ]  # fmt: skip
    assert "greeting three" in [e["message"] for e in newest["events"]]
    assert "greeting two" in [e["message"] for e in before["events"]]
    assert head["events"][0]["message"].startswith("INIT_START Runtime Version: ")
    assert head["events"][1]["message"].startswith("START RequestId: ")
    assert after_head["events"][-1]["message"] == newest["events"][-1]["message"]
    assert at_end["events"] == []
    assert at_end["nextForwardToken"] == after_head["nextForwardToken"]


def test_a_missing_log_group_is_resource_not_found(server: Server) -> None:
    with pytest.raises(ClientError) as missing:
        server.logs().filter_log_events(logGroupName="/aws/lambda/never-ran")  # type: ignore[attr-defined]

    error = missing.value.response["Error"]
    assert (error["Code"], error["Message"]) == (
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )


def test_retention_is_set_and_removed_through_the_logs_api(
    lam: object, server: Server, tmp_path: Path
) -> None:
    name = greeted(lam, server, "kept")
    group = f"/aws/lambda/{name}"
    logs = server.logs()

    aws_logs(server, tmp_path, "put-retention-policy", "--log-group-name", group,
             "--retention-in-days", "7")  # fmt: skip
    described = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as invalid:
        logs.put_retention_policy(logGroupName=group, retentionInDays=2)  # type: ignore[attr-defined]
    logs.delete_retention_policy(logGroupName=group)  # type: ignore[attr-defined]
    after = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]  # type: ignore[attr-defined]

    assert described["retentionInDays"] == 7
    assert invalid.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "retentionInDays" not in after


def test_lamina_logs_prints_a_functions_events_and_follows_new_ones(
    lam: object, server: Server
) -> None:
    name = greeted(lam, server, "first")

    printed = subprocess.run(
        [str(LAMINA), "logs", name, "--endpoint", server.url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    follower = subprocess.Popen(
        [str(LAMINA), "logs", name, "--follow", "--endpoint", server.url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lam.invoke(FunctionName=name, Payload=json.dumps({"name": "second"}))  # type: ignore[attr-defined]
        assert follower.stdout is not None
        seen = []
        while not any("greeting second" in line for line in seen):
            seen.append(follower.stdout.readline().rstrip("\n"))
    finally:
        follower.terminate()
        follower.communicate(timeout=10)

    lines = printed.stdout.splitlines()
    assert any(line.endswith(" greeting first") for line in lines)
    assert lines[0].split(" ")[2:5] == ["INIT_START", "Runtime", "Version:"]
    assert lines[1].split(" ")[2:4] == ["START", "RequestId:"]
    assert any(line.endswith(" greeting first") for line in seen)


def test_a_log_flood_is_bounded_per_function_and_the_report_line_is_still_written(
    lam: object, server: Server
) -> None:
    flood = (
        "import sys\n"
        "def handler(event, context):\n"
        "    line = 'x' * 1023 + '\\n'\n"
        "    for _ in range(100 * 1024):\n"
        "        sys.stdout.write(line)\n"
        "    return 'flooded'\n"
    )
    name = create_function(lam, flood, Timeout=120)

    response = lam.invoke(FunctionName=name)  # type: ignore[attr-defined]
    health = server.logs().describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{name}")  # type: ignore[attr-defined]
    answered_meanwhile = create_function(lam, "def handler(e, c):\n    return 1\n")

    assert response["Payload"].read() == b'"flooded"'
    stored = health["logGroups"][0]["storedBytes"]
    assert 0 < stored <= 16 * 1024 * 1024
    tail = server.logs().filter_log_events(  # type: ignore[attr-defined]
        logGroupName=f"/aws/lambda/{name}", filterPattern="REPORT"
    )
    assert len(tail["events"]) == 1
    assert lam.invoke(FunctionName=answered_meanwhile)["Payload"].read() == b"1"  # type: ignore[attr-defined]
