"""The model's constraints on an event invoke config body, checked before anything is stored."""

from __future__ import annotations

import pytest

from lamina.frontend.errors import InvalidParameterValue, ValidationFailed
from lamina.frontend.validation import validate_event_invoke_config

SINK = "arn:aws:lambda:us-east-1:000000000000:function:sink"


def test_every_broken_limit_is_reported_in_one_answer() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_event_invoke_config({"MaximumRetryAttempts": -1, "MaximumEventAgeInSeconds": 0})

    assert caught.value.message == (
        "2 validation errors detected: "
        "Value '-1' at 'maximumRetryAttempts' failed to satisfy constraint: "
        "Member must have value greater than or equal to 0; "
        "Value '0' at 'maximumEventAgeInSeconds' failed to satisfy constraint: "
        "Member must have value greater than or equal to 60"
    )


def test_a_destination_that_is_no_arn_fails_the_models_pattern_at_its_path() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_event_invoke_config({"DestinationConfig": {"OnSuccess": {"Destination": "x"}}})

    assert "Value 'x' at 'destinationConfig.onSuccess.destination'" in str(caught.value.message)


def test_a_limit_of_the_wrong_type_is_an_invalid_parameter() -> None:
    with pytest.raises(InvalidParameterValue):
        validate_event_invoke_config({"MaximumRetryAttempts": "two"})


def test_the_settings_given_are_named_and_an_empty_destination_counts_as_none() -> None:
    settings = validate_event_invoke_config(
        {"MaximumRetryAttempts": 0, "DestinationConfig": {"OnSuccess": {}, "OnFailure": {
            "Destination": SINK}}}
    )  # fmt: skip

    assert settings.given == {"MaximumRetryAttempts", "DestinationConfig"}
    assert settings.max_retries == 0
    assert settings.max_event_age_s is None
    assert (settings.on_success, settings.on_failure) == (None, SINK)
