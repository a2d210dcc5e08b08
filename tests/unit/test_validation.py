"""Checks of control-plane request bodies, against the answers real AWS Lambda gave."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from lamina.frontend.errors import (
    InvalidParameterValue,
    LambdaError,
    ResourceNotFound,
    ValidationFailed,
)
from lamina.frontend.shapes import Scope
from lamina.frontend.validation import (
    DEPRECATED_RUNTIMES,
    ENV_KEY_PATTERN,
    FUNCTION_NAME,
    FUNCTION_NAME_PATTERN,
    HANDLER_PATTERN,
    LAMBDA_RUNTIMES,
    LOG_GROUP_PATTERN,
    NAMESPACED_FUNCTION_NAME,
    NAMESPACED_FUNCTION_NAME_PATTERN,
    RESERVED_ENV_KEYS,
    ROLE_PATTERN,
    CreateRequest,
    parse_function_name,
    validate_create,
    validate_function_name,
    validate_list_params,
    validate_reserved_concurrency,
    validate_update_code,
    validate_update_configuration,
)

RECORDED = Path(__file__).resolve().parents[3] / "shared/reference/aws-recorded"
INSTALLED = {"python3.12": "Python 3.12", "python3.11": "Python 3.11"}
ROLE = "arn:aws:iam::111111111111:role/lambda-role"
REGION = "us-east-1"
HOME = Scope(REGION, "111111111111")
ZIP = b"PK\x05\x06" + bytes(18)  # the smallest well-formed (empty) zip archive


def recorded_error(test_name: str, label: str) -> tuple[str, str, int]:
    """(code, message, status) that real AWS answered, as the recorded snapshots hold them."""
    snapshot = RECORDED / "test_lambda_api.snapshot.json"
    if not snapshot.exists():
        pytest.skip("the responses recorded from AWS are not available")
    tests = json.loads(snapshot.read_text())
    key = next(k for k in tests if k.endswith(f"::{test_name}"))
    response = tests[key]["recorded-content"][label]
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], response["Error"]["Message"], status


def as_recorded(message: str, *names: str) -> str:
    """A message with the values the recordings replaced by placeholders replaced the same way."""
    message = message.replace("arn:aws:", "arn:<partition>:").replace(REGION, "<region>")
    for name in names:
        message = message.replace(name, "<function-name>")
    return message


def body(**changes: Any) -> dict[str, Any]:
    """A valid CreateFunction body as botocore serialises it, with `changes` applied."""
    request: dict[str, Any] = {
        "FunctionName": "echo",
        "Runtime": "python3.12",
        "Role": ROLE,
        "Handler": "handler.handler",
        "Code": {"ZipFile": base64.b64encode(ZIP).decode()},
    }
    request.update(changes)
    return {key: value for key, value in request.items() if value is not None}


def refusal(call, *args) -> LambdaError:
    with pytest.raises(LambdaError) as caught:
        call(*args)
    return caught.value


def create_refusal(**changes: Any) -> LambdaError:
    return refusal(validate_create, body(**changes), INSTALLED)


def update_refusal(**members: Any) -> LambdaError:
    return refusal(validate_update_configuration, members, INSTALLED)


def assert_validation(error: LambdaError, message: str) -> None:
    assert isinstance(error, ValidationFailed)
    assert (error.status, error.code) == (400, "ValidationException")
    assert error.message == message


def assert_invalid(error: LambdaError, message: str) -> None:
    assert isinstance(error, InvalidParameterValue)
    assert (error.status, error.code) == (400, "InvalidParameterValueException")
    assert error.message == message


def assert_recorded(error: LambdaError, recorded: tuple[str, str, int], *names: str) -> None:
    code, message, status = recorded
    assert (error.code, error.status) == (code, status)
    assert as_recorded(error.message, *names) == message


def one_failure(value: str, path: str, constraint: str) -> str:
    return (
        f"1 validation error detected: Value {value} at '{path}' failed to satisfy constraint: "
        + constraint
    )


def zipped(**files: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model() -> Any:
    return botocore.session.get_session().get_service_model("lambda")


class TestTheModel:
    """The constants Lamina checks against are the ones the Lambda service model publishes."""

    def test_the_function_name_patterns_and_lengths_are_the_models(self, model: Any) -> None:
        create = model.operation_model("CreateFunction").input_shape.members["FunctionName"]
        get = model.operation_model("GetFunction").input_shape.members["FunctionName"]

        assert (create.metadata["pattern"], create.metadata["max"]) == (
            FUNCTION_NAME_PATTERN,
            FUNCTION_NAME.max_length,
        )
        assert (get.metadata["pattern"], get.metadata["max"]) == (
            NAMESPACED_FUNCTION_NAME_PATTERN,
            NAMESPACED_FUNCTION_NAME.max_length,
        )

    def test_the_role_handler_variable_and_log_group_patterns_are_the_models(
        self, model: Any
    ) -> None:
        assert model.shape_for("RoleArn").metadata["pattern"] == ROLE_PATTERN
        assert model.shape_for("Handler").metadata["pattern"] == HANDLER_PATTERN
        assert model.shape_for("EnvironmentVariableName").metadata["pattern"] == ENV_KEY_PATTERN
        assert model.shape_for("LogGroup").metadata["pattern"] == LOG_GROUP_PATTERN

    def test_every_runtime_lambda_accepts_or_retired_is_one_the_model_names(
        self, model: Any
    ) -> None:
        named = set(model.shape_for("Runtime").enum)

        assert set(LAMBDA_RUNTIMES) <= named
        assert named >= DEPRECATED_RUNTIMES
        assert not DEPRECATED_RUNTIMES & set(LAMBDA_RUNTIMES)


class TestFunctionNames:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("echo", ("echo", None)),
            ("echo:live", ("echo", "live")),
            ("echo:$LATEST", ("echo", "$LATEST")),
            ("function:echo", ("echo", None)),
            ("111111111111:function:echo", ("echo", None)),
            ("111111111111:function:echo:7", ("echo", "7")),
            (f"arn:aws:lambda:{REGION}:111111111111:function:echo", ("echo", None)),
            (f"arn:aws:lambda:{REGION}:111111111111:function:echo:live", ("echo", "live")),
        ],
    )
    def test_a_name_a_partial_arn_and_a_full_arn_give_the_name_and_qualifier(
        self, raw: str, expected: tuple[str, str | None]
    ) -> None:
        assert parse_function_name(raw) == expected

    def test_read_operations_also_accept_dots_and_the_latest_published_qualifier(self) -> None:
        parsed = parse_function_name("my.fn:$LATEST.PUBLISHED", NAMESPACED_FUNCTION_NAME)

        assert parsed == ("my.fn", "$LATEST.PUBLISHED")

    def test_validate_function_name_returns_the_plain_name(self) -> None:
        assert validate_function_name("111111111111:function:echo:live") == "echo"

    def test_a_name_outside_the_pattern_is_refused_as_aws_refuses_it(self) -> None:
        recorded = recorded_error("test_function_arns", "invalid_function_name_exc")

        error = refusal(parse_function_name, "invalid:function:name")

        assert isinstance(error, ValidationFailed)
        assert_recorded(error, recorded)

    def test_a_read_path_name_is_checked_against_the_namespaced_pattern(self) -> None:
        recorded = recorded_error("test_invalid_invoke", "invoke_function_name_pattern_exc")
        raw = f"arn:aws:lambda:{REGION}:123400000000@function:myfn"

        error = refusal(parse_function_name, raw, NAMESPACED_FUNCTION_NAME)

        assert_recorded(error, recorded)

    def test_an_arn_longer_than_140_characters_is_refused_as_aws_refuses_it(self) -> None:
        recorded = recorded_error("test_function_arns", "long_function_arn_exc")
        prefix = f"arn:aws:lambda:{REGION}:111111111111:function:"
        long_name = "a" * (141 - len(prefix))

        error = refusal(parse_function_name, prefix + long_name)

        assert isinstance(error, ValidationFailed)
        assert_recorded(error, recorded, long_name)

    def test_a_name_longer_than_64_characters_is_an_invalid_parameter_as_aws_says(self) -> None:
        recorded = recorded_error("test_function_arns", "long_function_name_exc")

        error = refusal(parse_function_name, "a" * 65)

        assert isinstance(error, InvalidParameterValue)
        assert_recorded(error, recorded)

    def test_an_empty_name_is_refused_for_its_length_and_its_pattern(self) -> None:
        error = refusal(parse_function_name, "")

        assert_validation(
            error,
            "2 validation errors detected: Value '' at 'functionName' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1; Value '' at "
            "'functionName' failed to satisfy constraint: Member must satisfy regular expression "
            f"pattern: {FUNCTION_NAME_PATTERN}",
        )

    def test_an_arn_of_another_region_is_not_found_here_as_aws_says(self) -> None:
        code, message, status = recorded_error(
            "test_function_arns", "function_arn_other_region_exc"
        )
        raw = "arn:aws:lambda:ap-southeast-1:111111111111:function:echo"

        error = refusal(parse_function_name, raw, FUNCTION_NAME, HOME)

        assert isinstance(error, ResourceNotFound)
        assert (error.code, error.status) == (code, status)
        assert error.message.replace(REGION, "<region>") == message

    def test_an_arn_of_this_region_is_accepted(self) -> None:
        raw = f"arn:aws:lambda:{REGION}:111111111111:function:echo"

        assert validate_function_name(raw, FUNCTION_NAME, HOME) == "echo"

    def test_an_arn_of_another_account_is_access_denied_with_no_message(self) -> None:
        code, message, status = recorded_error(
            "test_function_arns", "function_arn_other_account_exc"
        )
        raw = f"arn:aws:lambda:{REGION}:222222222222:function:echo"

        error = refusal(parse_function_name, raw, FUNCTION_NAME, HOME)

        assert (error.code, error.status, error.message) == (code, status, message)
        assert error.body() == {"Message": None}


class TestCreate:
    def test_a_minimal_request_gets_lambdas_defaults(self) -> None:
        request = validate_create(body(), INSTALLED)

        assert request == CreateRequest(
            name="echo",
            runtime="python3.12",
            handler="handler.handler",
            role=ROLE,
            zip_bytes=ZIP,
            log_group="/aws/lambda/echo",
        )
        assert (request.memory_size, request.timeout, request.ephemeral_storage) == (128, 3, 512)
        assert (request.architectures, request.tracing_mode, request.log_format) == (
            ("x86_64",),
            "PassThrough",
            "Text",
        )

    def test_every_setting_given_is_carried_over(self) -> None:
        request = validate_create(
            body(
                FunctionName=f"arn:aws:lambda:{REGION}:111111111111:function:echo",
                MemorySize=10240,
                Timeout=900,
                Description="d" * 256,
                Environment={"Variables": {"STAGE": "prod", "AWS_LAMBDA_EXEC_WRAPPER": "/w"}},
                EphemeralStorage={"Size": 10240},
                Architectures=["arm64"],
                TracingConfig={"Mode": "Active"},
                LoggingConfig={"LogFormat": "JSON", "LogGroup": "/custom/group"},
                Publish=True,
                Tags={"team": "core"},
            ),
            INSTALLED,
        )

        assert request.name == "echo"
        assert (request.memory_size, request.timeout) == (10240, 900)
        assert request.environment == {"STAGE": "prod", "AWS_LAMBDA_EXEC_WRAPPER": "/w"}
        assert (request.ephemeral_storage, request.architectures) == (10240, ("arm64",))
        assert (request.tracing_mode, request.log_format) == ("Active", "JSON")
        assert (request.log_group, request.publish, request.tags) == (
            "/custom/group",
            True,
            {"team": "core"},
        )

    def test_the_config_fields_are_the_ones_function_config_stores(self) -> None:
        fields = validate_create(body(), INSTALLED).config_fields()

        assert fields["name"] == "echo"
        assert "zip_bytes" not in fields and "publish" not in fields and "tags" not in fields

    def test_the_zip_file_is_decoded_from_base64(self) -> None:
        archive = zipped(**{"handler.py": b"def handler(e, c):\n    return e\n"})
        code = {"ZipFile": base64.b64encode(archive).decode()}

        assert validate_create(body(Code=code), INSTALLED).zip_bytes == archive

    def test_missing_required_members_are_refused_together(self) -> None:
        error = create_refusal(FunctionName=None, Role=None, Code=None)

        assert_validation(
            error,
            "3 validation errors detected: "
            "Value null at 'functionName' failed to satisfy constraint: Member must not be null; "
            "Value null at 'role' failed to satisfy constraint: Member must not be null; "
            "Value null at 'code' failed to satisfy constraint: Member must not be null",
        )

    def test_a_role_that_is_not_an_iam_role_arn_is_refused_as_aws_refuses_it(self) -> None:
        recorded = recorded_error("test_create_lambda_exceptions", "invalid_role_arn_exc")

        assert_recorded(create_refusal(Role="r1"), recorded)

    @pytest.mark.parametrize(
        ("runtime", "label"),
        [("non-existent-runtime", "invalid_runtime_exc"), ("PYTHON3.9", "uppercase_runtime_exc")],
    )
    def test_a_runtime_lambda_does_not_know_is_refused_as_aws_refuses_it(
        self, runtime: str, label: str
    ) -> None:
        recorded = recorded_error("test_create_lambda_exceptions", label)

        error = create_refusal(Runtime=runtime)

        assert isinstance(error, InvalidParameterValue)
        assert_recorded(error, recorded)

    @pytest.mark.parametrize(
        "runtime",
        ["java8", "go1.x", "provided", "ruby2.7", "nodejs14.x", "python3.7", "dotnetcore3.1",
         "nodejs12.x"],
    )  # fmt: skip
    def test_a_retired_runtime_is_refused_as_no_longer_supported(self, runtime: str) -> None:
        recorded = recorded_error(
            f"test_create_deprecated_function_runtime_with_validation_enabled[{runtime}]",
            "deprecation_error",
        )

        error = create_refusal(Runtime=runtime)

        assert isinstance(error, InvalidParameterValue)
        assert_recorded(error, recorded)

    def test_a_lambda_runtime_not_installed_here_names_the_installed_ones(self) -> None:
        error = create_refusal(Runtime="nodejs22.x")

        assert_invalid(
            error,
            "The runtime nodejs22.x is valid for AWS Lambda but is not installed on this Lamina "
            "host. Runtimes installed here: python3.11, python3.12.",
        )

    @pytest.mark.parametrize("missing", ["Runtime", "Handler"])
    def test_a_zip_function_needs_both_runtime_and_handler(self, missing: str) -> None:
        error = create_refusal(**{missing: None})

        assert_invalid(
            error,
            "Runtime and Handler are mandatory parameters for functions created with deployment "
            "packages.",
        )

    @pytest.mark.parametrize(
        ("architectures", "label"),
        [(["x86_64", "arm64"], "multiple_architectures"), (["X86_64"], "uppercase_architecture")],
    )
    def test_anything_but_exactly_one_known_architecture_is_refused_as_aws_refuses_it(
        self, architectures: list[str], label: str
    ) -> None:
        recorded = recorded_error("test_create_lambda_exceptions", label)

        error = create_refusal(Architectures=architectures)

        assert isinstance(error, ValidationFailed)
        assert_recorded(error, recorded)

    def test_no_architecture_at_all_is_refused(self) -> None:
        assert_validation(
            create_refusal(Architectures=[]),
            one_failure(
                "'[]'", "architectures", "Member must have length greater than or equal to 1"
            ),
        )

    @pytest.mark.parametrize(
        ("member", "value", "path", "bound"),
        [
            ("Timeout", 0, "timeout", "greater than or equal to 1"),
            ("Timeout", 901, "timeout", "less than or equal to 900"),
            ("MemorySize", 127, "memorySize", "greater than or equal to 128"),
            ("MemorySize", 10241, "memorySize", "less than or equal to 10240"),
        ],
    )
    def test_timeout_and_memory_outside_lambdas_limits_are_refused(
        self, member: str, value: int, path: str, bound: str
    ) -> None:
        # Lambda's own limits, in the words AWS answered deployments with (the model now allows
        # up to 5400 s and 32768 MB for other kinds of functions).
        error = create_refusal(**{member: value})

        assert_validation(
            error, one_failure(f"'{value}'", path, f"Member must have value {bound}")
        )

    @pytest.mark.parametrize(
        ("size", "constraint"),
        [
            (511, "Member must have value greater than or equal to 512"),
            (10241, "Member must have value less than or equal to 10240"),
        ],
    )
    def test_ephemeral_storage_outside_512_to_10240_is_refused(
        self, size: int, constraint: str
    ) -> None:
        error = create_refusal(EphemeralStorage={"Size": size})

        assert_validation(error, one_failure(f"'{size}'", "ephemeralStorage.size", constraint))

    def test_ephemeral_storage_without_a_size_is_refused(self) -> None:
        error = create_refusal(EphemeralStorage={})

        assert_validation(
            error, one_failure("null", "ephemeralStorage.size", "Member must not be null")
        )

    def test_a_description_over_256_characters_is_refused(self) -> None:
        description = "d" * 257

        error = create_refusal(Description=description)

        assert_validation(
            error,
            one_failure(
                f"'{description}'",
                "description",
                "Member must have length less than or equal to 256",
            ),
        )

    def test_several_constraint_failures_are_answered_together_in_the_models_order(self) -> None:
        error = create_refusal(Role="r1", Timeout=0, MemorySize=99999, Architectures=["sparc"])

        assert_validation(
            error,
            "4 validation errors detected: "
            "Value 'r1' at 'role' failed to satisfy constraint: Member must satisfy regular "
            f"expression pattern: {ROLE_PATTERN}; "
            "Value '0' at 'timeout' failed to satisfy constraint: Member must have value greater "
            "than or equal to 1; "
            "Value '99999' at 'memorySize' failed to satisfy constraint: Member must have value "
            "less than or equal to 10240; "
            "Value '[sparc]' at 'architectures' failed to satisfy constraint: Member must satisfy "
            "constraint: [Member must satisfy enum value set: [x86_64, arm64], Member must not be "
            "null]",
        )

    def test_constraint_failures_come_before_the_services_own_rules(self) -> None:
        error = create_refusal(Runtime="python3.7", Timeout=0)

        assert isinstance(error, ValidationFailed)

    @pytest.mark.parametrize("key", ["A", "1ABC", "MY-VAR", "_HANDLER", "with space"])
    def test_a_variable_name_outside_the_pattern_is_refused_without_showing_values(
        self, key: str
    ) -> None:
        error = create_refusal(Environment={"Variables": {key: "secret", "OK": "fine"}})

        assert_validation(
            error,
            "1 validation error detected: Value at 'environment.variables' failed to satisfy "
            "constraint: Map keys must satisfy constraint: [Member must satisfy regular "
            "expression pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
        )

    def test_reserved_variables_are_refused_and_named_in_request_order(self) -> None:
        variables = {"AWS_SECRET_ACCESS_KEY": "s", "STAGE": "prod", "AWS_REGION": "eu-west-1"}

        error = create_refusal(Environment={"Variables": variables})

        assert_invalid(
            error,
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            "for modification. Reserved keys used in this request: AWS_SECRET_ACCESS_KEY, "
            "AWS_REGION",
        )

    @pytest.mark.parametrize("key", sorted(k for k in RESERVED_ENV_KEYS if k[0].isalpha()))
    def test_each_reserved_variable_is_refused(self, key: str) -> None:
        error = create_refusal(Environment={"Variables": {key: "x"}})

        assert isinstance(error, InvalidParameterValue)
        assert error.message.endswith(f"Reserved keys used in this request: {key}")

    @pytest.mark.parametrize(
        ("test_name", "label", "variables"),
        [
            (
                "test_large_environment_variables_fails",
                "failed_create_fn_result",
                {"LARGE_VAR": "x" * (4096 - 6 - len("LARGE_VAR"))},
            ),
            (
                "test_large_environment_fails_multiple_keys",
                "failured_create_fn_result_multi_key",
                {"SMALL_VAR": "ok", "LARGE_VAR": "x" * 4064},
            ),
        ],
    )
    def test_variables_over_4kb_as_compact_json_are_refused_as_aws_refuses_them(
        self, test_name: str, label: str, variables: dict[str, str]
    ) -> None:
        recorded = recorded_error(test_name, label)

        error = create_refusal(Environment={"Variables": variables})

        assert isinstance(error, InvalidParameterValue)
        assert_recorded(error, recorded)

    def test_variables_of_exactly_4kb_are_accepted(self) -> None:
        variables = {"LARGE_VAR": "x" * (4096 - 7 - len("LARGE_VAR"))}

        request = validate_create(body(Environment={"Variables": variables}), INSTALLED)

        assert request.environment == variables

    def test_non_ascii_values_count_in_utf8_bytes(self) -> None:
        # 2 048 two-byte characters are 4 096 bytes before the JSON around them is counted.
        error = create_refusal(Environment={"Variables": {"NAME": "é" * 2048}})

        assert isinstance(error, InvalidParameterValue)
        assert "exceeded the 4KB limit" in error.message

    def test_code_from_s3_is_refused(self) -> None:
        error = create_refusal(Code={"S3Bucket": "bucket", "S3Key": "code.zip"})

        assert_invalid(
            error,
            "Lamina takes function code only as a .zip archive in ZipFile; code from Amazon S3 "
            "(S3Bucket, S3Key, S3ObjectVersion) is not supported.",
        )

    @pytest.mark.parametrize(
        "changes",
        [{"PackageType": "Image"}, {"Code": {"ImageUri": "1.dkr.ecr.eu-west-1.amazonaws.com/x"}}],
    )
    def test_container_images_are_refused(self, changes: dict[str, Any]) -> None:
        assert_invalid(
            create_refusal(**changes),
            "Lamina runs functions from .zip archives only; container images (PackageType "
            "Image, ImageUri) are not supported.",
        )

    def test_a_package_type_lambda_does_not_know_is_refused(self) -> None:
        assert_validation(
            create_refusal(PackageType="Tarball"),
            one_failure(
                "'Tarball'", "packageType", "Member must satisfy enum value set: [Zip, Image]"
            ),
        )

    def test_code_without_a_zip_file_is_refused(self) -> None:
        assert_invalid(
            create_refusal(Code={}),
            "Lamina takes function code only as a .zip archive in ZipFile, and the request has "
            "none.",
        )

    def test_a_zip_file_that_is_not_base64_is_refused(self) -> None:
        error = create_refusal(Code={"ZipFile": "not base64!"})

        assert_invalid(error, "ZipFile is not valid base64.")

    def test_a_qualified_name_cannot_be_created(self) -> None:
        error = create_refusal(FunctionName="echo:live")

        assert_invalid(
            error,
            "FunctionName 'echo:live' names a version or alias; a new function takes an "
            "unqualified name or ARN.",
        )

    def test_a_name_longer_than_64_characters_is_refused_on_create_too(self) -> None:
        recorded = recorded_error("test_function_arns", "long_function_name_exc")

        assert_recorded(create_refusal(FunctionName="a" * 65), recorded)

    @pytest.mark.parametrize(
        ("member", "value", "path", "allowed"),
        [
            ("TracingConfig", {"Mode": "On"}, "tracingConfig.mode", "[Active, PassThrough]"),
            ("LoggingConfig", {"LogFormat": "XML"}, "loggingConfig.logFormat", "[JSON, Text]"),
        ],
    )
    def test_tracing_and_log_formats_outside_their_enums_are_refused(
        self, member: str, value: dict[str, str], path: str, allowed: str
    ) -> None:
        shown = next(iter(value.values()))

        error = create_refusal(**{member: value})

        assert_validation(
            error,
            one_failure(f"'{shown}'", path, f"Member must satisfy enum value set: {allowed}"),
        )

    def test_a_log_group_with_forbidden_characters_is_refused(self) -> None:
        error = create_refusal(LoggingConfig={"LogGroup": "bad group"})

        assert_validation(
            error,
            one_failure(
                "'bad group'",
                "loggingConfig.logGroup",
                f"Member must satisfy regular expression pattern: {LOG_GROUP_PATTERN}",
            ),
        )

    def test_a_log_level_outside_its_enum_is_refused(self) -> None:
        error = create_refusal(LoggingConfig={"LogFormat": "JSON", "SystemLogLevel": "TRACE"})

        assert_validation(
            error,
            one_failure(
                "'TRACE'",
                "loggingConfig.systemLogLevel",
                "Member must satisfy enum value set: [DEBUG, INFO, WARN]",
            ),
        )

    @pytest.mark.parametrize(
        ("member", "value", "message"),
        [
            ("Timeout", "3", "Timeout must be an integer."),
            ("MemorySize", True, "MemorySize must be an integer."),
            ("Environment", {"Variables": {"STAGE": 1}},
             "Environment.Variables must map names to string values."),
            ("Architectures", "x86_64", "Architectures must be a list."),
            ("Runtime", 3.12, "Runtime must be a string."),
            ("Tags", {"team": None}, "Tags must map keys to string values."),
        ],
    )  # fmt: skip
    def test_members_of_the_wrong_json_type_are_refused(
        self, member: str, value: Any, message: str
    ) -> None:
        assert_invalid(create_refusal(**{member: value}), message)


class TestUpdateConfiguration:
    def test_only_the_members_given_are_returned_as_changes(self) -> None:
        changes = validate_update_configuration(
            {"Timeout": 10, "Description": "", "TracingConfig": {"Mode": "Active"}}, INSTALLED
        )

        assert changes == {"timeout": 10, "description": "", "tracing_mode": "Active"}

    def test_every_updatable_member_maps_to_its_function_config_field(self) -> None:
        changes = validate_update_configuration(
            {
                "Role": ROLE,
                "Handler": "app.main",
                "Runtime": "python3.11",
                "MemorySize": 256,
                "Environment": {"Variables": {"STAGE": "dev"}},
                "EphemeralStorage": {"Size": 1024},
                "LoggingConfig": {"LogFormat": "JSON", "LogGroup": "/g"},
            },
            INSTALLED,
        )

        assert changes == {
            "role": ROLE,
            "handler": "app.main",
            "runtime": "python3.11",
            "memory_size": 256,
            "environment": {"STAGE": "dev"},
            "environment_set": True,
            "ephemeral_storage": 1024,
            "log_format": "JSON",
            "log_group": "/g",
        }

    @pytest.mark.parametrize("environment", [{}, {"Variables": {}}])
    def test_an_empty_environment_clears_the_variables(self, environment: dict[str, Any]) -> None:
        changes = validate_update_configuration({"Environment": environment}, INSTALLED)

        assert changes == {"environment": {}, "environment_set": True}

    def test_architectures_are_not_a_configuration_member(self) -> None:
        assert validate_update_configuration({"Architectures": ["arm64"]}, INSTALLED) == {}

    def test_an_invalid_role_is_refused_as_aws_refuses_it(self) -> None:
        recorded = recorded_error("test_update_lambda_exceptions", "invalid_role_arn_exc")

        assert_recorded(update_refusal(Role="r1"), recorded)

    @pytest.mark.parametrize(
        ("runtime", "label"),
        [("non-existent-runtime", "invalid_runtime_exc"), ("PYTHON3.9", "uppercase_runtime_exc")],
    )
    def test_an_unknown_runtime_is_refused_as_aws_refuses_it(
        self, runtime: str, label: str
    ) -> None:
        recorded = recorded_error("test_update_lambda_exceptions", label)

        assert_recorded(update_refusal(Runtime=runtime), recorded)

    def test_a_retired_runtime_is_refused(self) -> None:
        error = update_refusal(Runtime="python3.7")

        assert isinstance(error, InvalidParameterValue)
        assert error.message.startswith("The runtime parameter of python3.7 is no longer")

    def test_a_runtime_not_installed_here_is_refused(self) -> None:
        error = update_refusal(Runtime="java21")

        assert isinstance(error, InvalidParameterValue)
        assert "not installed on this Lamina host" in error.message

    def test_reserved_variables_are_refused(self) -> None:
        error = update_refusal(Environment={"Variables": {"AWS_REGION": "x"}})

        assert isinstance(error, InvalidParameterValue)
        assert error.message.endswith("Reserved keys used in this request: AWS_REGION")

    def test_limits_apply_as_on_create(self) -> None:
        error = update_refusal(Timeout=901, Handler="has space")

        assert_validation(
            error,
            "2 validation errors detected: Value 'has space' at 'handler' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {HANDLER_PATTERN}; "
            "Value '901' at 'timeout' failed to satisfy constraint: Member must have value less "
            "than or equal to 900",
        )


class TestUpdateCode:
    def test_the_zip_file_is_decoded(self) -> None:
        archive = zipped(**{"handler.py": b"x = 1\n"})

        code = validate_update_code({"ZipFile": base64.b64encode(archive).decode()})

        assert code == archive

    def test_code_from_s3_is_refused(self) -> None:
        error = refusal(validate_update_code, {"S3Bucket": "bucket", "S3Key": "code.zip"})

        assert isinstance(error, InvalidParameterValue)
        assert "code from Amazon S3" in error.message

    def test_an_image_is_refused(self) -> None:
        error = refusal(validate_update_code, {"ImageUri": "1.dkr.ecr.eu-west-1.amazonaws.com/x"})

        assert isinstance(error, InvalidParameterValue)
        assert "container images" in error.message

    def test_a_request_without_code_is_refused(self) -> None:
        error = refusal(validate_update_code, {"Publish": True})

        assert isinstance(error, InvalidParameterValue)
        assert error.message.endswith("and the request has none.")

    def test_more_than_one_architecture_is_refused(self) -> None:
        recorded = recorded_error("test_create_lambda_exceptions", "multiple_architectures")
        request = {"ZipFile": "", "Architectures": ["x86_64", "arm64"]}

        assert_recorded(refusal(validate_update_code, request), recorded)


class TestReservedConcurrency:
    @pytest.mark.parametrize("value", [0, 1, 900])
    def test_zero_or_more_is_accepted(self, value: int) -> None:
        assert validate_reserved_concurrency({"ReservedConcurrentExecutions": value}) == value

    def test_a_negative_value_is_refused(self) -> None:
        error = refusal(validate_reserved_concurrency, {"ReservedConcurrentExecutions": -1})

        assert_validation(
            error,
            one_failure(
                "'-1'",
                "reservedConcurrentExecutions",
                "Member must have value greater than or equal to 0",
            ),
        )

    def test_a_missing_value_is_refused(self) -> None:
        error = refusal(validate_reserved_concurrency, {})

        assert_validation(
            error, one_failure("null", "reservedConcurrentExecutions", "Member must not be null")
        )


class TestListParameters:
    def test_without_parameters_the_default_page_size_and_no_marker_are_returned(self) -> None:
        assert validate_list_params({}) == (None, 50)

    def test_the_marker_and_max_items_are_returned(self) -> None:
        assert validate_list_params({"Marker": "abc", "MaxItems": "10000"}) == ("abc", 10000)

    def test_an_empty_marker_means_the_first_page(self) -> None:
        assert validate_list_params({"Marker": ""}, default=10) == (None, 10)

    @pytest.mark.parametrize(
        ("value", "constraint"),
        [
            ("0", "Member must have value greater than or equal to 1"),
            ("10001", "Member must have value less than or equal to 10000"),
        ],
    )
    def test_max_items_outside_1_to_10000_is_refused(self, value: str, constraint: str) -> None:
        error = refusal(validate_list_params, {"MaxItems": value})

        assert_validation(error, one_failure(f"'{value}'", "maxItems", constraint))

    def test_max_items_that_is_no_number_is_refused(self) -> None:
        error = refusal(validate_list_params, {"MaxItems": "ten"})

        assert_invalid(error, "MaxItems must be an integer.")

    def test_a_function_version_other_than_all_is_refused_as_aws_refuses_it(self) -> None:
        recorded = recorded_error("test_list_functions", "list_functions_invalid_functionversion")

        error = refusal(validate_list_params, {"FunctionVersion": "invalid"})

        assert isinstance(error, ValidationFailed)
        assert_recorded(error, recorded)
