"""The AWS CLI publishes versions, moves aliases and invokes through them against Lamina."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Server, create_function, make_zip
from tests.e2e.test_aws_cli import aws, ok


def test_the_cli_publishes_a_version_points_an_alias_and_invokes_through_it(
    lam: object, server: Server, tmp_path: Path
) -> None:
    name = create_function(lam, "def handler(event, context):\n    return 'one'\n")

    published = ok(aws(server, tmp_path, "publish-version", "--function-name", name))
    alias = ok(
        aws(server, tmp_path, "create-alias", "--function-name", name, "--name", "live",
            "--function-version", published["Version"])
    )  # fmt: skip
    out = tmp_path / "out.json"
    invoked = ok(
        aws(server, tmp_path, "invoke", "--function-name", name, "--qualifier", "live", str(out))
    )
    aliases = ok(aws(server, tmp_path, "list-aliases", "--function-name", name))
    versions = ok(aws(server, tmp_path, "list-versions-by-function", "--function-name", name))
    refused = aws(server, tmp_path, "create-alias", "--function-name", name, "--name", "2",
                  "--function-version", "1")  # fmt: skip

    assert published["Version"] == "1"
    assert alias["AliasArn"].endswith(f":function:{name}:live")
    assert invoked["ExecutedVersion"] == "1"
    assert json.loads(out.read_text()) == "one"
    assert [a["Name"] for a in aliases["Aliases"]] == ["live"]
    assert [v["Version"] for v in versions["Versions"]] == ["$LATEST", "1"]
    assert refused.returncode != 0
    assert "ValidationException" in refused.stderr


def test_the_cli_shifts_alias_traffic_and_is_refused_a_second_update_in_progress(
    lam: object, server: Server, tmp_path: Path
) -> None:
    name = create_function(lam, "def handler(event, context):\n    return 'one'\n")
    ok(aws(server, tmp_path, "publish-version", "--function-name", name))
    slow = make_zip({"index.py": "import time\ntime.sleep(3)\ndef handler(e, c):\n    return 2\n"})
    (tmp_path / "slow.zip").write_bytes(slow)

    updating = ok(
        aws(server, tmp_path, "update-function-code", "--function-name", name,
            "--zip-file", f"fileb://{tmp_path / 'slow.zip'}")
    )  # fmt: skip
    second = aws(server, tmp_path, "update-function-configuration", "--function-name", name,
                 "--timeout", "9")  # fmt: skip
    ok(aws(server, tmp_path, "wait", "function-updated-v2", "--function-name", name))
    ok(aws(server, tmp_path, "publish-version", "--function-name", name))
    ok(
        aws(server, tmp_path, "create-alias", "--function-name", name, "--name", "live",
            "--function-version", "1", "--routing-config", 'AdditionalVersionWeights={2=0.25}')
    )  # fmt: skip
    alias = ok(aws(server, tmp_path, "get-alias", "--function-name", name, "--name", "live"))

    assert updating["LastUpdateStatus"] == "InProgress"
    assert second.returncode != 0
    assert "ResourceConflictException" in second.stderr
    assert "An update is in progress" in second.stderr
    assert alias["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.25}}
