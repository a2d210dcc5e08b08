"""Alias, publish and tag requests are checked with the messages AWS answers with."""

from __future__ import annotations

import pytest

from lamina.frontend.errors import InvalidParameterValue, ValidationFailed
from lamina.frontend.validation import validate_alias, validate_provisioned, validate_tags


def test_a_purely_numeric_alias_name_is_refused_with_the_model_pattern() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_alias({"Name": "2024", "FunctionVersion": "1"})

    assert refused.value.message == (
        "1 validation error detected: Value '2024' at 'name' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
    )


def test_a_date_like_alias_name_is_accepted() -> None:
    asked = validate_alias({"Name": "2024-01-02", "FunctionVersion": "1"})

    assert (asked.name, asked.function_version, asked.weights) == ("2024-01-02", "1", None)


def test_weights_out_of_range_are_printed_as_java_prints_the_map() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_alias(
            {"Name": "a", "FunctionVersion": "1", "RoutingConfig": {
                "AdditionalVersionWeights": {"2": 2}}}
        )  # fmt: skip

    assert "Value '{2=2.0}' at 'routingConfig.additionalVersionWeights'" in refused.value.message


def test_an_update_takes_the_alias_name_from_the_path_and_keeps_what_it_omits() -> None:
    asked = validate_alias({"RevisionId": "r"}, path_name="live")

    assert (asked.name, asked.function_version, asked.description) == ("live", None, None)
    assert (asked.weights, asked.revision_id) == (None, "r")


def test_an_empty_routing_config_clears_the_weights() -> None:
    asked = validate_alias({"RoutingConfig": {}}, path_name="live")

    assert asked.weights == {}


def test_tagging_with_no_tags_is_refused_with_aws_words() -> None:
    with pytest.raises(InvalidParameterValue) as refused:
        validate_tags({"Tags": {}})

    assert refused.value.message == "An error occurred and the request cannot be processed."


def test_provisioned_concurrency_needs_a_qualifier_and_at_least_one_execution() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_provisioned({}, {"ProvisionedConcurrentExecutions": 0})

    assert refused.value.message == (
        "2 validation errors detected: Value null at 'qualifier' failed to satisfy constraint: "
        "Member must not be null; Value '0' at 'provisionedConcurrentExecutions' failed to "
        "satisfy constraint: Member must have value greater than or equal to 1"
    )
