"""What the registry stores about a function: its configuration and its lifecycle state."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Self

from lamina.tenancy import DEFAULT_ACCOUNT, FunctionKey

LATEST = "$LATEST"


def runtime_version_arn(region: str, runtime: str) -> str:
    """The ARN of the one version Lamina has of each runtime, as Lambda names runtime versions."""
    digest = hashlib.sha256(runtime.encode()).hexdigest()
    return f"arn:aws:lambda:{region}::runtime:{digest}"


@dataclass(frozen=True)
class FunctionConfig:
    """The configuration of one function version, as CreateFunction and its updates set it.

    `revision_id` changes with every change of code or configuration, so a sandbox started for
    one revision is never reused for another.
    """

    name: str
    runtime: str
    handler: str
    role: str
    code_sha256: str  # hex digest of the zip; the code store's key
    code_size: int
    revision_id: str
    last_modified: str
    memory_size: int = 128
    timeout: int = 3
    description: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    # Lambda shows Environment only for functions that were given one, even an empty one.
    environment_set: bool = True
    ephemeral_storage: int = 512
    # The sandbox's network mode, from the function's `lamina:network` tag (a Lamina setting).
    network: str = "outbound"
    architectures: tuple[str, ...] = ("x86_64",)
    tracing_mode: str = "PassThrough"
    log_format: str = "Text"
    log_group: str = ""
    version: str = LATEST
    # The isolation backend the function's `lamina:isolation` tag names; "" for the worker's.
    isolation: str = ""
    state: str = "Pending"
    state_reason: str | None = "The function is being created."
    state_reason_code: str | None = "Creating"
    last_update_status: str | None = None
    last_update_status_reason: str | None = None
    last_update_status_reason_code: str | None = None
    account_id: str = DEFAULT_ACCOUNT

    @property
    def key(self) -> FunctionKey:
        """The function's identity across accounts: every table keyed by function uses it."""
        return FunctionKey.of(self.account_id, self.name)

    def replace(self, **changes: Any) -> FunctionConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["architectures"] = list(self.architectures)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FunctionConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in known}
        values["architectures"] = tuple(values.get("architectures", ("x86_64",)))
        return cls(**values)


class Stored:
    """A record kept as a JSON document of its fields."""

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Self:
        return cls(**doc)


@dataclass(frozen=True)
class Alias(Stored):
    """A name for one published version (or $LATEST), optionally with a second version that
    receives a share of the invokes (`weights`: version -> share between 0 and 1)."""

    name: str
    function_version: str
    revision_id: str
    description: str = ""
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvisionedConcurrency(Stored):
    """Sandboxes kept initialised for a published version or an alias (`qualifier`)."""

    qualifier: str
    requested: int
    last_modified: str
    failure: str | None = None  # why the sandboxes could not be started, if they could not
