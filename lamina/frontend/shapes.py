"""Lamina's records rendered in the shapes of the botocore Lambda model."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lamina.registry.model import Alias, FunctionConfig, runtime_version_arn


@dataclass(frozen=True)
class Scope:
    """Where ARNs point: the region and account the frontend serves."""

    region: str
    account_id: str

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def runtime_version_arn(self, runtime: str) -> str:
        return runtime_version_arn(self.region, runtime)


def code_sha256_b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


def function_configuration(
    config: FunctionConfig, scope: Scope, listing: bool = False, qualifier: str | None = None
) -> dict[str, Any]:
    """FunctionConfiguration; a listing leaves out state fields, as ListFunctions does.

    The FunctionArn carries `qualifier`: the one the request named, or the version listed.
    """
    doc: dict[str, Any] = {
        "FunctionName": config.name,
        "FunctionArn": scope.function_arn(config.name, qualifier),
        "Runtime": config.runtime,
        "Role": config.role,
        "Handler": config.handler,
        "CodeSize": config.code_size,
        "Description": config.description,
        "Timeout": config.timeout,
        "MemorySize": config.memory_size,
        "LastModified": config.last_modified,
        "CodeSha256": code_sha256_b64(config.code_sha256),
        "Version": config.version,
        "TracingConfig": {"Mode": config.tracing_mode},
        "RevisionId": config.revision_id,
        "PackageType": "Zip",
        "Architectures": list(config.architectures),
        "EphemeralStorage": {"Size": config.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": config.log_format, "LogGroup": config.log_group},
    }
    if config.environment_set:
        doc["Environment"] = {"Variables": dict(config.environment)}
    if listing:
        return doc

    doc["State"] = config.state
    optional = {
        "StateReason": config.state_reason,
        "StateReasonCode": config.state_reason_code,
        "LastUpdateStatus": config.last_update_status,
        "LastUpdateStatusReason": config.last_update_status_reason,
        "LastUpdateStatusReasonCode": config.last_update_status_reason_code,
    }
    doc.update({k: v for k, v in optional.items() if v is not None})
    doc["RuntimeVersionConfig"] = {"RuntimeVersionArn": scope.runtime_version_arn(config.runtime)}
    return doc


def alias_configuration(function: str, alias: Alias, scope: Scope) -> dict[str, Any]:
    """AliasConfiguration; RoutingConfig only when a second version takes a share."""
    doc: dict[str, Any] = {
        "AliasArn": scope.function_arn(function, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.weights:
        doc["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return doc
