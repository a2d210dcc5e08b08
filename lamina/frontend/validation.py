"""Checks of control-plane requests: clean values out, Lambda's own errors for bad input.

Every function here is pure. It takes a request body as botocore serialises it (already decoded
from JSON) or a query mapping, and either returns plain values or raises the `LambdaError` that
AWS Lambda answers the same request with.

Lambda checks a request in two layers, and Lamina keeps them apart the same way:

1. Constraints of the service model (lengths, ranges, patterns, enums, required members). AWS
   collects every failure of this layer into one `ValidationException` reading
   "N validation error(s) detected: <failure>; <failure>".
2. The service's own rules (runtimes, reserved environment keys, the 4 KB environment limit, the
   64-character function name ...), answered one at a time as `InvalidParameterValueException`.

Where Lambda's limits for classic functions are tighter than the model's (Timeout 900 s,
MemorySize and EphemeralStorage 10,240 MB), Lamina applies Lambda's limits in the wording of the
first layer, as AWS does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lamina.frontend.errors import (
    AccessDenied,
    InvalidParameterValue,
    ResourceNotFound,
    ValidationFailed,
)
from lamina.frontend.shapes import Scope
from lamina.sandbox import network

FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
NAMESPACED_FUNCTION_NAME_PATTERN = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?"
)
ROLE_PATTERN = r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
HANDLER_PATTERN = r"[^\s]+"
ENV_KEY_PATTERN = r"[a-zA-Z]([a-zA-Z0-9_])+"
LOG_GROUP_PATTERN = r"[\.\-_/#A-Za-z0-9]+"

# Group numbers of the parts in both function-name patterns above.
_REGION_GROUP, _ACCOUNT_GROUP, _NAME_GROUP, _QUALIFIER_GROUP = 3, 9, 11, 13

# The runtimes Lambda accepts for new and updated functions, in the order its messages list them.
LAMBDA_RUNTIMES = (
    "nodejs20.x", "python3.14", "provided.al2023", "python3.12", "python3.13", "nodejs24.x",
    "nodejs22.x", "java25", "python3.10", "python3.11", "java21", "ruby3.3", "ruby3.4", "ruby3.2",
    "python3.8", "python3.9", "java17", "nodejs16.x", "dotnet10", "dotnet8", "java11", "dotnet6",
    "nodejs18.x", "provided.al2", "java8.al2",
)  # fmt: skip

# Runtimes the model still names but Lambda refuses for creating or updating functions.
DEPRECATED_RUNTIMES = frozenset({
    "nodejs", "nodejs4.3", "nodejs4.3-edge", "nodejs6.10", "nodejs8.10", "nodejs10.x",
    "nodejs12.x", "nodejs14.x", "java8", "python2.7", "python3.6", "python3.7", "dotnetcore1.0",
    "dotnetcore2.0", "dotnetcore2.1", "dotnetcore3.1", "go1.x", "ruby2.5", "ruby2.7", "provided",
})  # fmt: skip

# Set by Lambda in every execution environment, so a function may not set them itself.
# (_HANDLER and _X_AMZN_TRACE_ID already fail the variable-name pattern; they stay listed so
# the set is Lambda's whole list.)
RESERVED_ENV_KEYS = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
})  # fmt: skip

MAX_NAME_LENGTH = 64
MAX_ENVIRONMENT_BYTES = 4096
TIMEOUT_RANGE = (1, 900)
MEMORY_RANGE = (128, 10240)
EPHEMERAL_STORAGE_RANGE = (512, 10240)
MAX_ITEMS_RANGE = (1, 10000)
ARCHITECTURES = ("x86_64", "arm64")
PACKAGE_TYPES = ("Zip", "Image")
TRACING_MODES = ("Active", "PassThrough")
LOG_FORMATS = ("JSON", "Text")
APPLICATION_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
SYSTEM_LOG_LEVELS = ("DEBUG", "INFO", "WARN")

_NO_IMAGES = (
    "Lamina runs functions from .zip archives only; container images (PackageType Image, "
    "ImageUri) are not supported."
)
_NO_S3 = (
    "Lamina takes function code only as a .zip archive in ZipFile; code from Amazon S3 "
    "(S3Bucket, S3Key, S3ObjectVersion) is not supported."
)
_NO_ZIP = "Lamina takes function code only as a .zip archive in ZipFile, and the request has none."
_MANDATORY_FOR_ZIP = (
    "Runtime and Handler are mandatory parameters for functions created with deployment packages."
)


@dataclass(frozen=True)
class NameShape:
    """How an operation's FunctionName member is constrained in the service model."""

    pattern: str
    max_length: int


# CreateFunction, UpdateFunction*, PublishVersion, the alias and concurrency operations.
FUNCTION_NAME = NameShape(FUNCTION_NAME_PATTERN, 140)
# GetFunction, GetFunctionConfiguration, DeleteFunction, Invoke and the other read paths.
NAMESPACED_FUNCTION_NAME = NameShape(NAMESPACED_FUNCTION_NAME_PATTERN, 256)


@dataclass(frozen=True)
class CreateRequest:
    """A CreateFunction request that passed every check, with Lambda's defaults filled in."""

    name: str
    runtime: str
    handler: str
    role: str
    zip_bytes: bytes
    memory_size: int = 128
    timeout: int = 3
    description: str = ""
    environment: Mapping[str, str] = field(default_factory=dict)
    environment_set: bool = False
    ephemeral_storage: int = 512
    architectures: tuple[str, ...] = ("x86_64",)
    tracing_mode: str = "PassThrough"
    log_format: str = "Text"
    log_group: str = ""
    publish: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def config_fields(self) -> dict[str, Any]:
        """The members that `FunctionConfig` stores under the same names."""
        return {
            "name": self.name,
            "runtime": self.runtime,
            "handler": self.handler,
            "role": self.role,
            "memory_size": self.memory_size,
            "timeout": self.timeout,
            "description": self.description,
            "environment": dict(self.environment),
            "environment_set": self.environment_set,
            "ephemeral_storage": self.ephemeral_storage,
            "architectures": self.architectures,
            "tracing_mode": self.tracing_mode,
            "log_format": self.log_format,
            "log_group": self.log_group,
        }


class _Constraints:
    """Collects failures of the model's constraints, to be answered together as AWS does."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def fail(self, value: Any, path: str, constraint: str, *, sensitive: bool = False) -> None:
        # AWS leaves out the values of members the model marks sensitive.
        shown = "" if sensitive else f" {_render(value)}"
        self.failures.append(
            f"Value{shown} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def not_null(self, value: Any, path: str) -> bool:
        if value is None:
            self.fail(None, path, "Member must not be null")
        return value is not None

    def length(self, value: str | list[Any], path: str, low: int, high: int) -> None:
        if len(value) < low:
            self.fail(value, path, f"Member must have length greater than or equal to {low}")
        if len(value) > high:
            self.fail(value, path, f"Member must have length less than or equal to {high}")

    def pattern(self, value: str, path: str, pattern: str) -> None:
        if re.fullmatch(pattern, value) is None:
            self.fail(value, path, f"Member must satisfy regular expression pattern: {pattern}")

    def at_least(self, value: int, path: str, low: int) -> None:
        if value < low:
            self.fail(value, path, f"Member must have value greater than or equal to {low}")

    def range(self, value: int, path: str, bounds: tuple[int, int]) -> None:
        low, high = bounds
        self.at_least(value, path, low)
        if value > high:
            self.fail(value, path, f"Member must have value less than or equal to {high}")

    def enum(self, value: str, path: str, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.fail(value, path, f"Member must satisfy enum value set: {_value_set(allowed)}")

    def raise_if_any(self) -> None:
        count = len(self.failures)
        if count:
            noun = "error" if count == 1 else "errors"
            joined = "; ".join(self.failures)
            raise ValidationFailed(f"{count} validation {noun} detected: {joined}")


def parse_function_name(
    raw: str, shape: NameShape = FUNCTION_NAME, scope: Scope | None = None
) -> tuple[str, str | None]:
    """Split a name, a partial ARN or a full ARN into the function name and its qualifier.

    With `scope`, an ARN naming another region or account is refused as AWS refuses it.
    """
    constraints = _Constraints()
    _check_name(constraints, raw, "functionName", shape)
    constraints.raise_if_any()

    match = re.fullmatch(shape.pattern, raw)
    assert match is not None  # _check_name proved it matches
    if scope is not None:
        _check_home(match, scope)

    name = match.group(_NAME_GROUP)
    _check_name_length(raw, name)
    return name, match.group(_QUALIFIER_GROUP)


def validate_function_name(
    raw: str, shape: NameShape = FUNCTION_NAME, scope: Scope | None = None
) -> str:
    """The plain function name that `raw` designates; see `parse_function_name`."""
    return parse_function_name(raw, shape, scope)[0]


def _check_home(match: re.Match[str], scope: Scope) -> None:
    arn_region = (match.group(_REGION_GROUP) or "").rstrip(":")
    if arn_region and arn_region != scope.region:
        raise ResourceNotFound(
            f"Functions from '{arn_region}' are not reachable in this region ('{scope.region}')"
        )
    arn_account = (match.group(_ACCOUNT_GROUP) or "").rstrip(":")
    if arn_account and arn_account != scope.account_id:
        raise AccessDenied(None)


def validate_create(
    body: Mapping[str, Any], runtimes: Mapping[str, str], scope: Scope | None = None
) -> CreateRequest:
    """Check a CreateFunction body; `runtimes` maps the runtimes installed here to descriptions.

    With `scope`, a FunctionName ARN must name this region and account.
    """
    constraints = _Constraints()
    raw_name = _string(body, "FunctionName")
    if constraints.not_null(raw_name, "functionName"):
        _check_name(constraints, raw_name, "functionName", FUNCTION_NAME)
    role = _string(body, "Role")
    if constraints.not_null(role, "role"):
        _check_role(constraints, role)
    settings = _check_settings(constraints, body, creating=True)
    constraints.raise_if_any()

    name = _created_name(raw_name, scope)
    code = _object(body, "Code") or {}
    _refuse_other_packages(body, code)
    runtime = _string(body, "Runtime")
    handler = settings.pop("handler", None)
    if runtime is None or handler is None:
        raise InvalidParameterValue(_MANDATORY_FOR_ZIP)

    _check_runtime(runtime, runtimes)
    environment_set = "environment" in settings
    environment = settings.pop("environment", {})
    _check_environment_rules(environment)

    return CreateRequest(
        name=name,
        runtime=runtime,
        handler=handler,
        role=role,
        zip_bytes=_zip_bytes(code),
        environment=environment,
        environment_set=environment_set,
        log_group=settings.pop("log_group", f"/aws/lambda/{name}"),
        publish=_boolean(body, "Publish"),
        tags=_tags(body),
        **settings,
    )


def validate_update_configuration(
    body: Mapping[str, Any], runtimes: Mapping[str, str]
) -> dict[str, Any]:
    """Check an UpdateFunctionConfiguration body; returns only the `FunctionConfig` changes."""
    constraints = _Constraints()
    role = _string(body, "Role")
    if role is not None:
        _check_role(constraints, role)
    changes = _check_settings(constraints, body)
    constraints.raise_if_any()

    if role is not None:
        changes["role"] = role
    runtime = _string(body, "Runtime")
    if runtime is not None:
        _check_runtime(runtime, runtimes)
        changes["runtime"] = runtime

    if "environment" in changes:
        _check_environment_rules(changes["environment"])
        changes["environment_set"] = True
    return changes


def validate_update_code(body: Mapping[str, Any]) -> bytes:
    """Check an UpdateFunctionCode body and return the decoded zip archive."""
    constraints = _Constraints()
    architectures = _list(body, "Architectures")
    if architectures is not None:
        _check_architectures(constraints, architectures)
    constraints.raise_if_any()

    _refuse_other_packages(body, body)
    return _zip_bytes(body)


def validate_reserved_concurrency(body: Mapping[str, Any]) -> int:
    """Check a PutFunctionConcurrency body and return ReservedConcurrentExecutions."""
    constraints = _Constraints()
    reserved = _integer(body, "ReservedConcurrentExecutions")
    if constraints.not_null(reserved, "reservedConcurrentExecutions"):
        constraints.at_least(reserved, "reservedConcurrentExecutions", 0)
    constraints.raise_if_any()
    return reserved


def validate_list_params(query: Mapping[str, str], default: int = 50) -> tuple[str | None, int]:
    """Check the query of a List* operation and return (Marker, MaxItems).

    `FunctionVersion`, when given, must be `ALL`; the caller reads it from the query itself.
    """
    constraints = _Constraints()
    max_items = _query_integer(query, "MaxItems")
    if max_items is not None:
        constraints.range(max_items, "maxItems", MAX_ITEMS_RANGE)
    version = query.get("FunctionVersion")
    if version is not None:
        constraints.enum(version, "functionVersion", ("ALL",))
    constraints.raise_if_any()

    marker = query.get("Marker") or None
    return marker, default if max_items is None else max_items


def _check_name(constraints: _Constraints, raw: str, path: str, shape: NameShape) -> None:
    constraints.length(raw, path, 1, shape.max_length)
    constraints.pattern(raw, path, shape.pattern)


def _check_name_length(raw: str, name: str) -> None:
    # The model allows 140 characters for the whole ARN; Lambda itself allows 64 for the name.
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidParameterValue(
            f"1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy "
            f"constraint: Member must have length less than or equal to {MAX_NAME_LENGTH}"
        )


def _created_name(raw: str, scope: Scope | None) -> str:
    name, qualifier = parse_function_name(raw, scope=scope)
    if qualifier is not None:
        raise InvalidParameterValue(
            f"FunctionName '{raw}' names a version or alias; a new function takes an unqualified "
            "name or ARN."
        )
    return name


def _check_role(constraints: _Constraints, role: str) -> None:
    constraints.length(role, "role", 0, 10000)
    constraints.pattern(role, "role", ROLE_PATTERN)


def _check_settings(
    constraints: _Constraints, body: Mapping[str, Any], creating: bool = False
) -> dict[str, Any]:
    """Check the members CreateFunction and UpdateFunctionConfiguration share.

    Failures are added in the order of the members in the model, as AWS lists them; the result
    holds the `FunctionConfig` fields of the members present.
    """
    settings = _check_basics(constraints, body, creating)
    settings.update(_check_extras(constraints, body, creating))
    return settings


def _check_basics(
    constraints: _Constraints, body: Mapping[str, Any], creating: bool
) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    handler = _string(body, "Handler")
    if handler is not None:
        constraints.length(handler, "handler", 0, 128)
        constraints.pattern(handler, "handler", HANDLER_PATTERN)
        settings["handler"] = handler
    if creating:
        constraints.not_null(_object(body, "Code"), "code")

    description = _string(body, "Description")
    if description is not None:
        constraints.length(description, "description", 0, 256)
        settings["description"] = description
    timeout = _integer(body, "Timeout")
    if timeout is not None:
        constraints.range(timeout, "timeout", TIMEOUT_RANGE)
        settings["timeout"] = timeout
    memory_size = _integer(body, "MemorySize")
    if memory_size is not None:
        constraints.range(memory_size, "memorySize", MEMORY_RANGE)
        settings["memory_size"] = memory_size

    package_type = _string(body, "PackageType")
    if package_type is not None:
        constraints.enum(package_type, "packageType", PACKAGE_TYPES)
    return settings


def _check_extras(
    constraints: _Constraints, body: Mapping[str, Any], creating: bool
) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    environment = _environment(body)
    if environment is not None:
        _check_environment_keys(constraints, environment)
        settings["environment"] = environment
    tracing = _object(body, "TracingConfig") or {}
    tracing_mode = _string(tracing, "Mode", "TracingConfig.Mode")
    if tracing_mode is not None:
        constraints.enum(tracing_mode, "tracingConfig.mode", TRACING_MODES)
        settings["tracing_mode"] = tracing_mode

    # UpdateFunctionConfiguration has no Architectures member; UpdateFunctionCode carries it.
    architectures = _list(body, "Architectures") if creating else None
    if architectures is not None:
        _check_architectures(constraints, architectures)
        settings["architectures"] = tuple(architectures)
    storage = _ephemeral_storage(constraints, body)
    if storage is not None:
        settings["ephemeral_storage"] = storage

    settings.update(_logging(constraints, body))
    return settings


def _check_architectures(constraints: _Constraints, architectures: list[Any]) -> None:
    constraints.length(architectures, "architectures", 1, 1)
    if any(item not in ARCHITECTURES for item in architectures):
        allowed = _value_set(ARCHITECTURES)
        constraints.fail(
            architectures,
            "architectures",
            "Member must satisfy constraint: "
            f"[Member must satisfy enum value set: {allowed}, Member must not be null]",
        )


def _ephemeral_storage(constraints: _Constraints, body: Mapping[str, Any]) -> int | None:
    storage = _object(body, "EphemeralStorage")
    if storage is None:
        return None

    size = _integer(storage, "Size", "EphemeralStorage.Size")
    if constraints.not_null(size, "ephemeralStorage.size"):
        constraints.range(size, "ephemeralStorage.size", EPHEMERAL_STORAGE_RANGE)
    return size


def _logging(constraints: _Constraints, body: Mapping[str, Any]) -> dict[str, str]:
    logging = _object(body, "LoggingConfig") or {}
    fields: dict[str, str] = {}
    log_format = _string(logging, "LogFormat", "LoggingConfig.LogFormat")
    if log_format is not None:
        constraints.enum(log_format, "loggingConfig.logFormat", LOG_FORMATS)
        fields["log_format"] = log_format
    # Lamina keeps no log levels, yet a bad one is refused as Lambda refuses it.
    for member, allowed in (
        ("ApplicationLogLevel", APPLICATION_LOG_LEVELS),
        ("SystemLogLevel", SYSTEM_LOG_LEVELS),
    ):
        level = _string(logging, member, f"LoggingConfig.{member}")
        if level is not None:
            constraints.enum(level, f"loggingConfig.{_lower_first(member)}", allowed)
    log_group = _string(logging, "LogGroup", "LoggingConfig.LogGroup")
    if log_group is not None:
        constraints.length(log_group, "loggingConfig.logGroup", 1, 512)
        constraints.pattern(log_group, "loggingConfig.logGroup", LOG_GROUP_PATTERN)
        fields["log_group"] = log_group
    return fields


def _environment(body: Mapping[str, Any]) -> dict[str, str] | None:
    environment = _object(body, "Environment")
    if environment is None:
        return None

    variables = _object(environment, "Variables", "Environment.Variables") or {}
    if not all(isinstance(value, str) for value in variables.values()):
        raise InvalidParameterValue("Environment.Variables must map names to string values.")
    return dict(variables)


def _check_environment_keys(constraints: _Constraints, variables: Mapping[str, str]) -> None:
    if any(re.fullmatch(ENV_KEY_PATTERN, key) is None for key in variables):
        constraints.fail(
            variables,
            "environment.variables",
            "Map keys must satisfy constraint: "
            f"[Member must satisfy regular expression pattern: {ENV_KEY_PATTERN}]",
            sensitive=True,
        )


def _check_environment_rules(variables: Mapping[str, str]) -> None:
    reserved = [key for key in variables if key in RESERVED_ENV_KEYS]
    if reserved:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided contains reserved keys that are currently not supported "
            f"for modification. Reserved keys used in this request: {', '.join(reserved)}"
        )

    # Lambda measures the variables as compact JSON, in the order they were given.
    measured = json.dumps(dict(variables), separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode()) > MAX_ENVIRONMENT_BYTES:
        raise InvalidParameterValue(
            "Lambda was unable to configure your environment variables because the environment "
            "variables you have provided exceeded the 4KB limit. String measured: " + measured
        )


def _check_runtime(runtime: str, installed: Mapping[str, str]) -> None:
    if runtime in DEPRECATED_RUNTIMES:
        raise InvalidParameterValue(
            f"The runtime parameter of {runtime} is no longer supported for creating or updating "
            "AWS Lambda functions. We recommend you use a supported runtime while creating or "
            "updating functions."
        )

    if runtime not in LAMBDA_RUNTIMES:
        raise InvalidParameterValue(
            f"Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum "
            f"value set: {_value_set(LAMBDA_RUNTIMES)} or be a valid ARN"
        )

    if runtime not in installed:
        available = ", ".join(sorted(installed, key=_version_order)) or "none"
        raise InvalidParameterValue(
            f"The runtime {runtime} is valid for AWS Lambda but is not installed on this Lamina "
            f"host. Runtimes installed here: {available}."
        )


def _version_order(runtime: str) -> tuple[str | int, ...]:
    """Sort key that puts python3.9 before python3.10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", runtime))


def _refuse_other_packages(body: Mapping[str, Any], code: Mapping[str, Any]) -> None:
    if body.get("PackageType") == "Image" or code.get("ImageUri") is not None:
        raise InvalidParameterValue(_NO_IMAGES)

    if any(code.get(key) is not None for key in ("S3Bucket", "S3Key", "S3ObjectVersion")):
        raise InvalidParameterValue(_NO_S3)


def _zip_bytes(code: Mapping[str, Any]) -> bytes:
    encoded = code.get("ZipFile")
    if encoded is None:
        raise InvalidParameterValue(_NO_ZIP)

    if not isinstance(encoded, str):
        raise InvalidParameterValue("ZipFile must be the base64 text of a .zip archive.")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidParameterValue("ZipFile is not valid base64.") from None


def _tags(body: Mapping[str, Any]) -> dict[str, str]:
    tags = _object(body, "Tags") or {}
    if not all(isinstance(value, str) for value in tags.values()):
        raise InvalidParameterValue("Tags must map keys to string values.")
    return dict(tags)


def _string(body: Mapping[str, Any], key: str, member: str | None = None) -> str | None:
    return _typed(body, key, str, "a string", member)


def _integer(body: Mapping[str, Any], key: str, member: str | None = None) -> int | None:
    value = body.get(key)
    # JSON true/false decode to bool, which Python counts as int.
    if isinstance(value, bool):
        raise InvalidParameterValue(f"{member or key} must be an integer.")
    return _typed(body, key, int, "an integer", member)


def _boolean(body: Mapping[str, Any], key: str) -> bool:
    return bool(_typed(body, key, bool, "a boolean", None))


def _object(body: Mapping[str, Any], key: str, member: str | None = None) -> dict[str, Any] | None:
    return _typed(body, key, dict, "an object", member)


def _list(body: Mapping[str, Any], key: str) -> list[Any] | None:
    return _typed(body, key, list, "a list", None)


def _typed(
    body: Mapping[str, Any], key: str, kind: type, described: str, member: str | None
) -> Any:
    value = body.get(key)
    if value is not None and not isinstance(value, kind):
        raise InvalidParameterValue(f"{member or key} must be {described}.")
    return value


def _query_integer(query: Mapping[str, str], key: str) -> int | None:
    text = query.get(key)
    if text is None:
        return None

    try:
        return int(text)
    except ValueError:
        raise InvalidParameterValue(f"{key} must be an integer.") from None


def _render(value: Any) -> str:
    """A value as AWS's Java-built messages print it: quoted, lists as [a, b], null bare."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return f"'{_value_set(value)}'"
    return f"'{value}'"


def _value_set(values: list[Any] | tuple[str, ...]) -> str:
    return "[" + ", ".join(str(value) for value in values) + "]"


def _lower_first(member: str) -> str:
    return member[0].lower() + member[1:]


# Event invoke config (Put/Update FunctionEventInvokeConfig)

DESTINATION_ARN_PATTERN = (
    r"$|kafka://([^.]([a-zA-Z0-9\-_.]{0,248}))|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:"
    r"((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1})?:(\d{12})?:(.*)"
)
MAX_RETRY_ATTEMPTS_RANGE = (0, 2)
MAX_EVENT_AGE_RANGE = (60, 21600)
EVENT_INVOKE_CONFIG_LIST_RANGE = (1, 50)


@dataclass(frozen=True)
class EventInvokeSettings:
    """The settings a Put/Update FunctionEventInvokeConfig body gives; `given` names them."""

    given: frozenset[str]
    max_retries: int | None
    max_event_age_s: int | None
    on_success: str | None
    on_failure: str | None


def validate_event_invoke_config(body: Mapping[str, Any]) -> EventInvokeSettings:
    """Check the model's constraints on an event invoke config body, all failures together."""
    constraints = _Constraints()
    retries = _integer(body, "MaximumRetryAttempts")
    if retries is not None:
        constraints.range(retries, "maximumRetryAttempts", MAX_RETRY_ATTEMPTS_RANGE)
    age = _integer(body, "MaximumEventAgeInSeconds")
    if age is not None:
        constraints.range(age, "maximumEventAgeInSeconds", MAX_EVENT_AGE_RANGE)

    destinations = _object(body, "DestinationConfig") or {}
    arns = {}
    for member in ("OnSuccess", "OnFailure"):
        target = _object(destinations, member, f"DestinationConfig.{member}") or {}
        arn = _string(target, "Destination", f"DestinationConfig.{member}.Destination")
        path = f"destinationConfig.{_lower_first(member)}.destination"
        if arn is not None:
            constraints.length(arn, path, 0, 350)
            constraints.pattern(arn, path, DESTINATION_ARN_PATTERN)
        arns[member] = arn or None
    constraints.raise_if_any()

    keys = ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
    return EventInvokeSettings(
        given=frozenset(key for key in keys if body.get(key) is not None),
        max_retries=retries,
        max_event_age_s=age,
        on_success=arns["OnSuccess"],
        on_failure=arns["OnFailure"],
    )


def validate_event_invoke_config_list(query: Mapping[str, str]) -> tuple[str | None, int]:
    """Check ListFunctionEventInvokeConfigs' query and return (Marker, MaxItems)."""
    constraints = _Constraints()
    max_items = _query_integer(query, "MaxItems")
    if max_items is not None:
        constraints.range(max_items, "maxItems", EVENT_INVOKE_CONFIG_LIST_RANGE)
    constraints.raise_if_any()
    high = EVENT_INVOKE_CONFIG_LIST_RANGE[1]
    return query.get("Marker") or None, high if max_items is None else max_items


# Versions, aliases and tags

ALIAS_PATTERN = r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
VERSION_PATTERN = r"(\$LATEST|[0-9]+)"
ADDITIONAL_VERSION_PATTERN = r"[0-9]+"
TAGGABLE_RESOURCE_PATTERN = (
    r"arn:(aws[a-zA-Z-]*):lambda:(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:"
    r"(function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?|layer:([a-zA-Z0-9-_]+)|"
    r"code-signing-config:csc-[a-z0-9]{17}|event-source-mapping:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|capacity-provider:[a-zA-Z0-9-_]+)"
)
MAX_DESCRIPTION = 256
MAX_TAGS = 50
_WEIGHTS_PATH = "routingConfig.additionalVersionWeights"
_WEIGHT_VALUE_RULES = (
    "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
    "Member must have value greater than or equal to 0.0, Member must not be null]"
)
_WEIGHT_KEY_RULES = (
    "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, "
    "Member must have length greater than or equal to 1, Member must satisfy regular "
    f"expression pattern: {ADDITIONAL_VERSION_PATTERN}]"
)


@dataclass(frozen=True)
class AliasRequest:
    """The members of a CreateAlias or UpdateAlias body; None where the body leaves one out."""

    name: str
    function_version: str | None
    description: str | None
    weights: dict[str, float] | None
    revision_id: str | None = None


def validate_alias(body: Mapping[str, Any], path_name: str | None = None) -> AliasRequest:
    """Check a CreateAlias body, or an UpdateAlias body with the alias name from the path."""
    constraints = _Constraints()
    creating = path_name is None
    name = _string(body, "Name") if creating else path_name
    if constraints.not_null(name, "name"):
        constraints.length(name, "name", 1, 128)
        constraints.pattern(name, "name", ALIAS_PATTERN)
    version = _string(body, "FunctionVersion")
    if creating:
        constraints.not_null(version, "functionVersion")
    if version is not None:
        constraints.length(version, "functionVersion", 1, 1024)
        constraints.pattern(version, "functionVersion", VERSION_PATTERN)
    description = _string(body, "Description")
    if description is not None:
        constraints.length(description, "description", 0, MAX_DESCRIPTION)
    weights = _routing_weights(constraints, body)
    constraints.raise_if_any()

    return AliasRequest(name, version, description, weights, _string(body, "RevisionId"))


def _routing_weights(
    constraints: _Constraints, body: Mapping[str, Any]
) -> dict[str, float] | None:
    routing = _object(body, "RoutingConfig", "RoutingConfig")
    if routing is None:
        return None
    weights = _object(routing, "AdditionalVersionWeights", "AdditionalVersionWeights") or {}
    if not all(isinstance(w, int | float) and not isinstance(w, bool) for w in weights.values()):
        raise InvalidParameterValue("AdditionalVersionWeights must map versions to numbers.")

    # AWS prints the map as Java does: {2=0.5}.
    shown = "{" + ", ".join(f"{key}={float(weight)}" for key, weight in weights.items()) + "}"
    if any(not 0.0 <= weight <= 1.0 for weight in weights.values()):
        constraints.failures.append(
            f"Value '{shown}' at '{_WEIGHTS_PATH}' failed to satisfy constraint: "
            f"{_WEIGHT_VALUE_RULES}"
        )
    if any(re.fullmatch(ADDITIONAL_VERSION_PATTERN, key) is None for key in weights):
        constraints.failures.append(
            f"Value '{shown}' at '{_WEIGHTS_PATH}' failed to satisfy constraint: "
            f"{_WEIGHT_KEY_RULES}"
        )
    return {key: float(weight) for key, weight in weights.items()}


def validate_publish(body: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """Check a PublishVersion body; returns (CodeSha256, Description, RevisionId)."""
    constraints = _Constraints()
    description = _string(body, "Description")
    if description is not None:
        constraints.length(description, "description", 0, MAX_DESCRIPTION)
    constraints.raise_if_any()
    return _string(body, "CodeSha256"), description, _string(body, "RevisionId")


def parse_taggable(raw: str, scope: Scope) -> tuple[str, str | None]:
    """The function name and qualifier of a tagging operation's resource ARN."""
    constraints = _Constraints()
    constraints.length(raw, "resource", 1, 256)
    constraints.pattern(raw, "resource", TAGGABLE_RESOURCE_PATTERN)
    constraints.raise_if_any()
    if ":function:" not in raw:
        raise InvalidParameterValue("Lamina keeps tags of functions only.")
    return parse_function_name(raw, FUNCTION_NAME, scope)


def validate_tags(body: Mapping[str, Any]) -> dict[str, str]:
    """Check the Tags of a TagResource body: at least one, every value a string."""
    tags = _tags(body)
    if not tags:
        raise InvalidParameterValue("An error occurred and the request cannot be processed.")
    return tags


def check_tag_count(tags: Mapping[str, str]) -> None:
    if len(tags) > MAX_TAGS:
        raise InvalidParameterValue("Number of tags exceeds resource tag limit.")


def network_mode(tags: Mapping[str, str]) -> str:
    """The sandbox network mode Lamina's `lamina:network` tag asks for."""
    try:
        return network.mode_of(dict(tags)).value
    except ValueError as error:
        raise InvalidParameterValue(str(error)) from None


def validate_provisioned(
    query: Mapping[str, str], body: Mapping[str, Any] | None
) -> tuple[str, int]:
    """Check a Put/Get/DeleteProvisionedConcurrencyConfig request: (Qualifier, executions).

    Without a body (Get and Delete) the executions are 0.
    """
    constraints = _Constraints()
    qualifier = query.get("Qualifier")
    if constraints.not_null(qualifier, "qualifier"):
        constraints.length(qualifier, "qualifier", 1, 128)
    executions = 0
    if body is not None:
        executions = _integer(body, "ProvisionedConcurrentExecutions")
        if constraints.not_null(executions, "provisionedConcurrentExecutions"):
            constraints.at_least(executions, "provisionedConcurrentExecutions", 1)
    constraints.raise_if_any()
    return qualifier, executions
