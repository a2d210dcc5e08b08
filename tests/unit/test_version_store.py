"""The registry keeps versions, aliases and serving configurations across a reopen."""

from __future__ import annotations

from pathlib import Path

from lamina.registry.model import Alias, FunctionConfig, ProvisionedConcurrency
from lamina.registry.store import Registry


def config(name: str = "fn", version: str = "$LATEST", sha: str = "a" * 64) -> FunctionConfig:
    return FunctionConfig(
        name=name, runtime="python3.11", handler="index.handler", role="arn:role",
        code_sha256=sha, code_size=10, revision_id=f"rev-{version}", last_modified="t",
        version=version,
    )  # fmt: skip


def test_versions_aliases_and_serving_survive_a_reopen(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    registry.create(config())
    registry.versions.put_version(config(version="1"))
    registry.versions.put_alias("fn", Alias("live", "1", "rev-a", "d", {"2": 0.25}))
    registry.versions.set_serving(config(sha="b" * 64), "fn")
    registry.versions.put_provisioned("fn", ProvisionedConcurrency("live", 2, "t"))
    registry.close()

    reopened = Registry(tmp_path / "r.db")

    assert [v.version for v in reopened.versions.versions("fn")] == ["1"]
    assert reopened.versions.alias("fn", "live") == Alias("live", "1", "rev-a", "d", {"2": 0.25})
    serving = reopened.versions.serving("fn")
    assert serving is not None and serving.code_sha256 == "b" * 64
    assert reopened.versions.provisioned_for("fn", "live") == ProvisionedConcurrency(
        "live", 2, "t"
    )
    assert reopened.versions.next_number("fn") == 2


def test_a_deleted_version_number_is_never_given_again(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    registry.create(config())
    registry.versions.put_version(config(version="1"))
    registry.versions.put_version(config(version="2"))

    registry.versions.delete_version("fn", "2")

    assert registry.versions.next_number("fn") == 3
    assert registry.versions.version("fn", "2") is None


def test_deleting_the_function_forgets_its_versions_aliases_and_tags(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "r.db")
    registry.create(config())
    registry.versions.put_version(config(version="1"))
    registry.versions.put_alias("fn", Alias("live", "1", "rev-a"))
    registry.set_tags("fn", {"team": "a"})

    registry.delete("fn")
    registry.create(config())

    assert registry.versions.versions("fn") == []
    assert registry.versions.aliases("fn") == []
    assert registry.tags("fn") == {}
    assert registry.versions.next_number("fn") == 1


def test_code_of_published_versions_and_serving_configurations_counts_as_in_use(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path / "r.db")
    registry.create(config(sha="c" * 64))
    registry.versions.put_version(config(version="1", sha="a" * 64))
    registry.versions.set_serving(config(sha="b" * 64), "fn")

    assert registry.code_in_use() == {"a" * 64, "b" * 64, "c" * 64}
