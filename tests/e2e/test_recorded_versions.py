"""Versions, aliases, revisions, tags and code signing answer as AWS Lambda answered them.

Each scenario repeats, through boto3, the steps of one of LocalStack's parity tests recorded
against AWS (see `tests/e2e/recorded.py`), and compares every answer with AWS's. One
`Bindings` spans a scenario, so a RevisionId must change exactly where AWS's changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import PYTHON_RUNTIME, ROLE, Server, make_zip, unique_name
from tests.e2e.recorded import Bindings, mismatches, recording, renamed
from tests.e2e.test_recorded_shapes import answer, wait_active, wait_updated

ECHO = make_zip({"index.py": "def handler(event, context):\n    return event\n"})
STAGING = {"Variables": {"testenv": "staging"}}
# LocalStack's create fixture: handler.handler, 30 s, and an empty Environment.
HANDLER = {
    "Handler": "handler.handler",
    "Timeout": 30,
    "Environment": {"Variables": {}},
    "Code": {"ZipFile": make_zip({"handler.py": "def handler(e, c):\n    return e\n"})},
}
RUNTIME = {"Runtime", "Configuration.Runtime", *(f"Versions[{i}].Runtime" for i in range(3))}


class Scenario:
    """Lamina's answers to the steps of one recorded test, compared as they come."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.bindings = Bindings()
        self.differences: dict[str, list[str]] = {}

    def record(self, label: str, response: dict[str, Any], old: str = "", new: str = "") -> None:
        recorded = recording(self.test, label)
        if old:
            recorded = renamed(recorded, old, new)
        self.differences[label] = mismatches(recorded, response, self.bindings, RUNTIME)


def create(lam: Any, name: str, **extra: Any) -> dict[str, Any]:
    params = {"Handler": "index.handler", "Code": {"ZipFile": ECHO}, **extra}
    return answer(
        lam.create_function, FunctionName=name, Role=ROLE, Runtime=PYTHON_RUNTIME, **params
    )


def version_lifecycle(lam: Any) -> Scenario:
    run = Scenario("TestLambdaVersions::test_version_lifecycle")
    name = unique_name("recorded-versions")
    run.record("create_response", create(lam, name, Description="No version :("))
    wait_active(lam, name)
    run.record("get_function_result", lam.get_function(FunctionName=name))
    run.record("list_versions_result", lam.list_versions_by_function(FunctionName=name))
    run.record(
        "first_update_response",
        lam.update_function_configuration(FunctionName=name, Description="First version :)"),
    )
    wait_updated(lam, name)
    run.record("first_update_get_function", lam.get_function(FunctionName=name))
    run.record(
        "first_publish_response",
        lam.publish_version(FunctionName=name, Description="First version description :)"),
    )
    run.record("first_publish_get_function", lam.get_function(FunctionName=name, Qualifier="1"))
    run.record(
        "first_publish_get_function_config",
        lam.get_function_configuration(FunctionName=name, Qualifier="1"),
    )
    run.record(
        "second_update_response",
        lam.update_function_configuration(FunctionName=name, Description="Second version :))"),
    )
    wait_updated(lam, name)
    run.record(
        "first_publish_get_function_after_update",
        lam.get_function(FunctionName=name, Qualifier="1"),
    )
    run.record("second_publish_response", lam.publish_version(FunctionName=name))
    run.record("third_publish_response", lam.publish_version(FunctionName=name))
    run.record(
        "list_versions_result_after_third_publish",
        lam.list_versions_by_function(FunctionName=name),
    )
    lam.delete_function(FunctionName=name, Qualifier="1")
    run.record(
        "list_versions_result_after_deletion_of_first_version",
        lam.list_versions_by_function(FunctionName=name),
    )
    return run


def publish_guards(lam: Any) -> list[Scenario]:
    runs = []
    for test, label, guard in (
        ("test_publish_with_wrong_revisionid", "publish_wrong_revisionid_exc", "RevisionId"),
        ("test_publish_with_wrong_sha256", "publish_wrong_sha256_exc", "CodeSha256"),
    ):
        # Recorded in 2022, before LoggingConfig and SnapStart: only the refusal compares.
        run = Scenario(f"TestLambdaVersions::{test}")
        name = unique_name("recorded-publish")
        create(lam, name)
        wait_active(lam, name)
        wrong = {"RevisionId": "abc", "CodeSha256": "somenonexistentsha256"}[guard]
        run.record(label, answer(lam.publish_version, FunctionName=name, **{guard: wrong}))
        runs.append(run)
    return runs


def publish_on_create(lam: Any) -> Scenario:
    run = Scenario("TestLambdaVersions::test_publish_version_on_create")
    name = unique_name("recorded-publish-create")
    run.record("create_response", create(lam, name, Publish=True))
    wait_active(lam, name)
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, Qualifier="1", WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )
    run.record("get_function_result", lam.get_function(FunctionName=name))
    run.record("get_function_version_result", lam.get_function(FunctionName=name, Qualifier="1"))
    run.record(
        "get_function_latest_result", lam.get_function(FunctionName=name, Qualifier="$LATEST")
    )
    run.record("list_versions_result", lam.list_versions_by_function(FunctionName=name))
    run.record("repeated_publish_response", lam.publish_version(FunctionName=name))
    run.record(
        "list_versions_result_after_publish", lam.list_versions_by_function(FunctionName=name)
    )
    return run


def revisions_of_versions_and_aliases(lam: Any) -> Scenario:
    run = Scenario("TestLambdaRevisions::test_function_revisions_version_and_alias")
    name = unique_name("recorded-revision-alias")
    run.record(
        "create_function_response_rev1",
        create(lam, name, **HANDLER),
    )
    wait_active(lam, name)
    active = lam.get_function(FunctionName=name)
    run.record("get_function_active_rev2", active)
    run.record(
        "publish_version_revision_exception",
        answer(lam.publish_version, FunctionName=name, RevisionId="wrong"),
    )
    run.record(
        "publish_version_response_rev_v1",
        lam.publish_version(FunctionName=name, RevisionId=active["Configuration"]["RevisionId"]),
    )
    run.record(
        "get_function_published_version_rev_v2", lam.get_function(FunctionName=name, Qualifier="1")
    )
    run.record("get_function_latest_rev3", lam.get_function(FunctionName=name))
    alias = lam.create_alias(FunctionName=name, Name="revision_alias", FunctionVersion="1")
    run.record("create_alias_response_rev_a1", alias)
    run.record("get_function_latest_rev4", lam.get_function(FunctionName=name))
    run.record(
        "get_function_published_version_rev_v3", lam.get_function(FunctionName=name, Qualifier="1")
    )
    run.record(
        "update_alias_revision_exception",
        answer(
            lam.update_alias,
            FunctionName=name,
            Name="revision_alias",
            Description="something changed",
            RevisionId="wrong",
        ),
    )
    run.record(
        "update_alias_response_rev_a2",
        lam.update_alias(
            FunctionName=name,
            Name="revision_alias",
            Description="something changed",
            RevisionId=alias["RevisionId"],
        ),
    )
    return run


def two_versions(lam: Any, run: Scenario, name: str, **create_extra: Any) -> None:
    """The opening of the alias scenarios: a function and versions 1 and 2 of it."""
    run.record("create_response", create(lam, name, Environment=STAGING, **create_extra))
    wait_active(lam, name)
    run.record("publish_v1", lam.publish_version(FunctionName=name))
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"testenv": "prod"}}
    )
    wait_updated(lam, name)
    run.record("publish_v2", lam.publish_version(FunctionName=name))


def alias_lifecycle(lam: Any) -> Scenario:
    run = Scenario("TestLambdaAlias::test_alias_lifecycle")
    name = unique_name("recorded-alias")
    two_versions(lam, run, name)
    weighted = {"AdditionalVersionWeights": {"2": 0.2}}
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]

    def alias_step(create_label: str, get_label: str, alias: str, **params: Any) -> None:
        run.record(create_label, lam.create_alias(FunctionName=name, Name=alias, **params))
        run.record(get_label, lam.get_alias(FunctionName=name, Name=alias))

    alias_step(
        "create_alias_1_1", "get_alias_1_1", "aliasname1_1",
        FunctionVersion="1", Description="custom-alias", RoutingConfig=weighted,
    )  # fmt: skip
    run.record(
        "get_function_alias_1_1", lam.get_function(FunctionName=name, Qualifier="aliasname1_1")
    )
    run.record(
        "get_function_byarn_alias_1_1", lam.get_function(FunctionName=f"{arn}:aliasname1_1")
    )
    run.record(
        "get_function_alias_notfound_exc",
        answer(lam.get_function, FunctionName=name, Qualifier="aliasdoesnotexist"),
    )
    run.record(
        "get_function_alias_byarn_notfound_exc",
        answer(lam.get_function, FunctionName=f"{arn}:aliasdoesnotexist"),
    )
    alias_step(
        "create_alias_1_2", "get_alias_1_2", "aliasname1_2",
        FunctionVersion="1", Description="custom-alias",
    )  # fmt: skip
    alias_step("create_alias_1_3", "get_alias_1_3", "aliasname1_3", FunctionVersion="1")
    alias_step(
        "create_alias_2", "get_alias_2", "aliasname2",
        FunctionVersion="2", Description="custom-alias",
    )  # fmt: skip
    run.record("list_aliases_for_fnname", lam.list_aliases(FunctionName=name))
    run.record(
        "update_alias_1_1",
        lam.update_alias(
            FunctionName=name, Name="aliasname1_1", RoutingConfig={"AdditionalVersionWeights": {}}
        ),
    )
    run.record("get_alias_1_1_after_update", lam.get_alias(FunctionName=name, Name="aliasname1_1"))
    run.record("list_aliases_for_fnname_after_update", lam.list_aliases(FunctionName=name))
    run.record(
        "update_alias_1_2",
        lam.update_alias(FunctionName=name, Name="aliasname1_2", Description="custom-alias"),
    )
    run.record("get_alias_1_2_after_update", lam.get_alias(FunctionName=name, Name="aliasname1_2"))
    run.record("list_aliases_for_fnname_after_update_2", lam.list_aliases(FunctionName=name))
    run.record(
        "list_aliases_for_version", lam.list_aliases(FunctionName=name, FunctionVersion="1")
    )
    run.record("delete_alias_response", lam.delete_alias(FunctionName=name, Name="aliasname1_1"))
    run.record("list_aliases_for_fnname_afterdelete", lam.list_aliases(FunctionName=name))
    return run


def invalid_routing(lam: Any) -> Scenario:
    run = Scenario("TestLambdaAlias::test_notfound_and_invalid_routingconfigs")
    name = unique_name("recorded-routing")
    two_versions(lam, run, name, Publish=True)

    def attempt(label: str, alias: str = "custom", version: str = "1", **params: Any) -> None:
        run.record(
            label,
            answer(
                lam.create_alias,
                FunctionName=params.pop("FunctionName", name),
                Name=alias,
                FunctionVersion=version,
                **params,
            ),
        )

    def weights(**by_version: float) -> dict[str, Any]:
        return {"AdditionalVersionWeights": {k.lstrip("v"): w for k, w in by_version.items()}}

    attempt("routing_config_exc_toomany", RoutingConfig=weights(v2=0.5, v3=0.5))
    attempt("routing_config_exc_toohigh", RoutingConfig=weights(v2=2.0))
    attempt("routing_config_exc_subzero", RoutingConfig=weights(v2=-1.0))
    attempt("routing_config_exc_sameversion", RoutingConfig=weights(v1=0.5))
    attempt("target_version_doesnotexist", version="10", RoutingConfig=weights(v2=0.5))
    attempt("routing_config_exc_version_doesnotexist", RoutingConfig=weights(v10=0.5))
    attempt("target_version_exc_version_latest", version="$LATEST", RoutingConfig=weights(v2=0.5))
    attempt(
        "routing_config_exc_version_latest",
        RoutingConfig={"AdditionalVersionWeights": {"$LATEST": 0.5}},
    )
    attempt("create-alias-latest", alias="custom-latest", version="$LATEST")
    attempt(
        "routing_config_exc_fn_doesnotexist",
        FunctionName=f"{name}-unknown",
        RoutingConfig=weights(v2=0.5),
    )
    attempt(
        "create_alias_empty_routingconfig",
        alias="custom-empty-routingconfig",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )
    attempt("create_alias_response", RoutingConfig=weights(v2=0.5))
    attempt("routing_config_exc_already_exist", RoutingConfig=weights(v2=0.5))
    run.record(
        "alias_does_not_exist_esc",
        answer(lam.get_alias, FunctionName=name, Name="non-existent"),
    )
    return run


def alias_names_and_missing_aliases(lam: Any) -> list[Scenario]:
    naming = Scenario("TestLambdaAlias::test_alias_naming")
    name = unique_name("recorded-alias-naming")
    naming.record("create_response", create(lam, name, Environment=STAGING))
    wait_active(lam, name)
    naming.record("publish_v1", lam.publish_version(FunctionName=name))
    for label, alias in (("create_alias_date", "2024-01-02"), ("create_alias_number", "2024")):
        label = label if alias != "2024" else "create_alias_number_exception"
        naming.record(
            label,
            answer(
                lam.create_alias,
                FunctionName=name,
                Name=alias,
                FunctionVersion="1",
                Description="custom-alias",
            ),
        )
    naming.record("get_alias_date", lam.get_alias(FunctionName=name, Name="2024-01-02"))

    runs = [naming]
    for test, label, call in (
        ("test_non_existent_alias_deletion", "delete_alias_response", lam.delete_alias),
        ("test_non_existent_alias_update", "update_alias_response", lam.update_alias),
    ):
        run = Scenario(f"TestLambdaAlias::{test}")
        name = unique_name("recorded-alias-missing")
        run.record("create_response", create(lam, name, Environment=STAGING))
        wait_active(lam, name)
        run.record(label, answer(call, FunctionName=name, Name="non-existent"))
        runs.append(run)
    return runs


def tag_steps(lam: Any, run: Scenario, arn: str) -> None:
    """TagResource and UntagResource in the order of LocalStack's tag lifecycle test."""
    for label, call, params in (
        ("tag_single", lam.tag_resource, {"Tags": {"A": "tag-a"}}),
        ("tag_multiple", lam.tag_resource, {"Tags": {"B": "tag-b", "C": "tag-c"}}),
        ("tag_overlap", lam.tag_resource, {"Tags": {"C": "tag-c-newsuffix", "D": "tag-d"}}),
        ("untag_single", lam.untag_resource, {"TagKeys": ["A"]}),
        ("untag_multiple", lam.untag_resource, {"TagKeys": ["B", "C"]}),
        ("untag_nonexisting", lam.untag_resource, {"TagKeys": ["F"]}),
        ("untag_existing_and_nonexisting", lam.untag_resource, {"TagKeys": ["D", "F"]}),
    ):
        run.record(f"{label}_response", call(Resource=arn, **params))
        run.record(f"{label}_response_listtags", lam.list_tags(Resource=arn))


def tag_lifecycles(lam: Any) -> list[Scenario]:
    simple = Scenario("TestLambdaTag::test_tag_lifecycle[lambda_function]")
    name = unique_name("recorded-tags")
    arn = create(lam, name, **HANDLER)["FunctionArn"]
    wait_active(lam, name)
    tag_steps(lam, simple, arn)

    detailed = Scenario("TestLambdaTags::test_tag_lifecycle")
    name = unique_name("recorded-tags-revisions")
    arn = create(lam, name, Tags={"key_a": "value_a"}, **HANDLER)["FunctionArn"]
    wait_active(lam, name)

    def step(suffix: str, call: Any = None, label: str = "", **params: Any) -> None:
        if call is not None:
            response = call(Resource=arn, **params)
            if label:  # the recording keeps no answer of the untag calls
                detailed.record(label, response)
        detailed.record(f"list_tags_response_{suffix}", lam.list_tags(Resource=arn))
        detailed.record(f"get_fn_response_{suffix}", lam.get_function(FunctionName=name))

    step("postfncreate")
    more = {"key_b": "value_b", "key_c": "value_c", "key_d": "value_d", "key_e": "value_e"}
    step("postaddtags", lam.tag_resource, "tag_resource_response", Tags=more)
    step("overwrite", lam.tag_resource, "tag_resource_overwrite", Tags={"key_c": "value_x"})
    step("postuntag", lam.untag_resource, TagKeys=["key_c", "key_d"])
    step("postuntagall", lam.untag_resource, TagKeys=["key_a", "key_b", "key_e"])
    lam.delete_function(FunctionName=name)
    detailed.record("list_tags_postdelete", answer(lam.list_tags, Resource=arn))
    return [simple, detailed]


def tag_refusals(lam: Any) -> list[Scenario]:
    name = unique_name("recorded-tag-refusals")
    arn = create(lam, name, **HANDLER)["FunctionArn"]
    wait_active(lam, name)
    lam.publish_version(FunctionName=name)
    account, region = arn.split(":")[4], arn.split(":")[3]
    missing = unique_name("doesnotexist")
    missing_arn = arn.replace(f":function:{name}", f":function:{missing}")

    plain = Scenario("TestLambdaTags::test_tag_exceptions")
    for label, call, params, rename in (
        ("tag_lambda_invalidarn", lam.tag_resource, {"Resource": "arn:aws:something"}, False),
        ("tag_lambda_doesnotexist", lam.tag_resource, {"Resource": missing_arn}, True),
        ("tag_lambda_qualifier_doesnotexist", lam.tag_resource, {"Resource": f"{arn}:v1"}, False),
        ("list_tag_lambda_empty", lam.list_tags, {"Resource": arn}, False),
        ("untag_nomatch", lam.untag_resource, {"Resource": arn, "TagKeys": ["a"]}, False),
        ("untag_empty_keys", lam.untag_resource, {"Resource": arn, "TagKeys": []}, False),
        ("tag_empty_tags", lam.tag_resource, {"Resource": arn, "Tags": {}}, False),
    ):
        if call == lam.tag_resource and "Tags" not in params:
            params = {**params, "Tags": {"a": "b"}}
        response = answer(call, **params)
        plain.record(label, response, *(("doesnotexist", missing) if rename else ()))

    versions = Scenario("TestLambdaTags::test_tag_versions")
    for label, qualifier in (("tag_resource_exception", "1"), ("tag_resource_latest_exception",
                                                                "$LATEST")):  # fmt: skip
        versions.record(
            label, answer(lam.tag_resource, Resource=f"{arn}:{qualifier}", Tags={"a": "b"})
        )

    kinds = Scenario("TestLambdaTag::test_tag_exceptions[lambda_function]")
    foobar = f"arn:aws:lambda:{region}:{account}:foobar:{missing}"
    for label, call, params in (
        ("not_found_exception_tag", lam.tag_resource, {"Tags": {"A": "B"}}),
        ("not_found_exception_untag", lam.untag_resource, {"TagKeys": ["A"]}),
        ("not_found_exception_list", lam.list_tags, {}),
    ):
        kinds.record(label, answer(call, Resource=missing_arn, **params))
    kinds.record(
        "aliased_arn_exception", answer(lam.tag_resource, Resource=f"{arn}:alias", Tags={"A": "B"})
    )
    kinds.record(
        "invalid_arn_exception", answer(lam.tag_resource, Resource=foobar, Tags={"A": "B"})
    )
    return [plain, versions, kinds]


def tag_limits(lam: Any) -> Scenario:
    run = Scenario("TestLambdaTags::test_tag_limits")
    name = unique_name("recorded-tag-limits")
    arn = create(lam, name, **HANDLER)["FunctionArn"]
    wait_active(lam, name)
    fifty = {f"{i}_key": f"{i}_value" for i in range(50)}

    run.record(
        "tag_lambda_too_many_tags",
        answer(lam.tag_resource, Resource=arn, Tags={**fifty, "50_key": "50_value"}),
    )
    run.record("tag_response", lam.tag_resource(Resource=arn, Tags=fifty))
    run.record("list_tags_response", lam.list_tags(Resource=arn))
    run.record("get_fn_response", lam.get_function(FunctionName=name))
    run.record(
        "tag_lambda_too_many_tags_additional",
        answer(lam.tag_resource, Resource=arn, Tags={"a_key": "a_value"}),
    )
    run.record(
        "create_function_invalid_tags",
        create(lam, unique_name("too-many-tags"), Tags={**fifty, "50_key": "50_value"}),
    )
    return run


def tags_on_create_and_code_signing(lam: Any) -> list[Scenario]:
    tagged = Scenario("TestLambdaTag::test_create_tag_on_fn_create")
    name = unique_name("recorded-tag-create")
    create(lam, name, Tags={"testtag": "some-value"}, **HANDLER)
    wait_active(lam, name)
    function = lam.get_function(FunctionName=name)
    tagged.record("get_function_result", function)
    tagged.record(
        "list_tags_result", lam.list_tags(Resource=function["Configuration"]["FunctionArn"])
    )

    signing = Scenario("TestCodeSigningConfig::test_code_signing_not_found_excs")
    signing.record(
        "get_function_csc_fnwithoutcsc", lam.get_function_code_signing_config(FunctionName=name)
    )
    missing = unique_name("csc-test-doesnotexist")
    signing.record(
        "get_function_csc_nonexistingfn",
        answer(lam.get_function_code_signing_config, FunctionName=missing),
        "csc-test-doesnotexist",
        missing,
    )
    return [tagged, signing]


SCENARIOS: dict[str, Callable[[Any], Scenario | list[Scenario]]] = {
    "version lifecycle": version_lifecycle,
    "publish guards": publish_guards,
    "publish on create": publish_on_create,
    "revisions of versions and aliases": revisions_of_versions_and_aliases,
    "alias lifecycle": alias_lifecycle,
    "invalid routing configs": invalid_routing,
    "alias names and missing aliases": alias_names_and_missing_aliases,
    "tag lifecycles": tag_lifecycles,
    "tag refusals": tag_refusals,
    "tag limits": tag_limits,
    "tags on create and code signing": tags_on_create_and_code_signing,
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_step_answers_as_aws_did(server: Server, scenario: str) -> None:
    # Some steps send what botocore itself refuses (a negative weight): AWS answered those too.
    lam: Any = server.client(parameter_validation=False)

    ran = SCENARIOS[scenario](lam)

    for run in ran if isinstance(ran, list) else [ran]:
        assert {label: found for label, found in run.differences.items() if found} == {}
