"""Lambda's wire errors: the only place where Lamina's failures take AWS's names.

Each class knows its HTTP status, the `X-Amzn-ErrorType` code and whether the model spells its
message member `message` or `Message`. The frontend raises them, or translates the internal
errors of the other parts into them, and renders them at one boundary (`LambdaError.render`).
"""

from __future__ import annotations

import json
from typing import Any


class LambdaError(Exception):
    """An error the Lambda API answers with; subclasses fix code and status."""

    status = 400
    code = "ServiceException"
    message_key = "message"
    # "User" for the caller's fault, "Service" for ours, as the model's shapes mark them.
    fault = "User"

    def __init__(self, message: str | None, *, typed: bool = True, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        # Some of AWS's answers carry no Type member; `typed=False` reproduces them.
        self.typed = typed
        self.extra = extra

    def body(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"Type": self.fault} if self.typed else {}
        doc[self.message_key] = self.message
        doc.update(self.extra)
        return doc

    def headers(self) -> dict[str, str]:
        return {"X-Amzn-ErrorType": self.code, "Content-Type": "application/json"}

    def render(self) -> tuple[int, dict[str, str], bytes]:
        return self.status, self.headers(), json.dumps(self.body()).encode()


class ResourceNotFound(LambdaError):
    status = 404
    code = "ResourceNotFoundException"
    message_key = "Message"


class ProvisionedConcurrencyConfigNotFound(LambdaError):
    status = 404
    code = "ProvisionedConcurrencyConfigNotFoundException"


class AccessDenied(LambdaError):
    """403 for a resource of another account; AWS sends it with a null message."""

    status = 403
    code = "AccessDeniedException"
    message_key = "Message"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, typed=False)


class ResourceConflict(LambdaError):
    status = 409
    code = "ResourceConflictException"


class InvalidParameterValue(LambdaError):
    code = "InvalidParameterValueException"


class InvalidRequestContent(LambdaError):
    code = "InvalidRequestContentException"


class ValidationFailed(LambdaError):
    """Constraint failures: AWS answers these with a code absent from the model, and no Type."""

    code = "ValidationException"

    def body(self) -> dict[str, Any]:
        return {"message": self.message}


class RequestTooLarge(LambdaError):
    """413; on the wire AWS names it RequestEntityTooLargeException, not the model's name."""

    status = 413
    code = "RequestEntityTooLargeException"
    message_key = "Message"


class TooManyRequests(LambdaError):
    status = 429
    code = "TooManyRequestsException"

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__("Rate Exceeded.", Reason=reason)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class PreconditionFailed(LambdaError):
    status = 412
    code = "PreconditionFailedException"


class ServiceError(LambdaError):
    status = 500
    code = "ServiceException"
    message_key = "Message"
    fault = "Service"


class NotImplementedOperation(LambdaError):
    """An operation of the Lambda API that Lamina does not serve."""

    status = 501
    code = "UnsupportedOperationException"
    message_key = "Message"
    fault = "Service"


class SerializationFailed(LambdaError):
    """A request body that is not the JSON the operation takes."""

    code = "SerializationException"


class LogsError(LambdaError):
    """An error of the CloudWatch Logs API, served on the same endpoint: JSON 1.1's shape."""

    code = "InvalidParameterException"

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/x-amz-json-1.1"}


class LogsResourceNotFound(LogsError):
    code = "ResourceNotFoundException"


class LogsAccessDenied(LogsError):
    code = "AccessDeniedException"


class LogsInvalidParameter(LogsError):
    code = "InvalidParameterException"


class LogsUnknownOperation(LogsError):
    code = "UnknownOperationException"


class SignatureRefused(LambdaError):
    """403 for a request whose signature Lamina cannot verify; the code names the reason."""

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, typed=False)
        self.code = code
