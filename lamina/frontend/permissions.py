"""What a request asks to do in IAM's terms, and the refusal of a function's own credentials.

A function's credentials (`lamina/auth/sessions.py`) act as its execution role. Lamina keeps
no IAM policies, so a role may do nothing, as a role with no identity-based policy may do
nothing on AWS: every request signed with them is refused with AWS's AccessDeniedException,
naming the action (from the botocore model's routes) and the resource.
"""

from __future__ import annotations

import re
from functools import cache
from urllib.parse import unquote

import botocore.session
from aiohttp import web

from lamina.auth.sessions import FunctionSession
from lamina.frontend.errors import AccessDenied, LambdaError, LogsAccessDenied
from lamina.frontend.shapes import Scope

_LOGS_TARGET = re.compile(r"^Logs_\d+\.(\w+)$")
_PLACEHOLDER = re.compile(r"\{(\w+)(\+?)\}")
# Where IAM's action differs from the API operation's name.
_IAM_ACTIONS = {"Invoke": "InvokeFunction", "InvokeWithResponseStream": "InvokeFunction"}


def refusal(request: web.Request, session: FunctionSession, region: str) -> LambdaError:
    """The AccessDeniedException AWS answers a role allowed nothing with, for `request`."""
    target = _LOGS_TARGET.match(request.headers.get("X-Amz-Target", ""))
    if target is not None:
        # Log groups are not named here: the body is not read before the refusal.
        return LogsAccessDenied(_message(session, f"logs:{target.group(1)}", "*"))

    operation, function = _operation(request.method, unquote(request.raw_path.split("?")[0]))
    resource = "*"
    if function is not None:
        scope = Scope(region, session.account_id)
        resource = function if function.startswith("arn:") else scope.function_arn(function)
    action = f"lambda:{_IAM_ACTIONS.get(operation, operation)}"
    return AccessDenied(_message(session, action, resource))


def _message(session: FunctionSession, action: str, resource: str) -> str:
    return (
        f"User: {session.assumed_role_arn()} is not authorized to perform: {action} on "
        f"resource: {resource} because no identity-based policy allows the {action} action"
    )


def _operation(method: str, path: str) -> tuple[str, str | None]:
    """The model's operation for a method and path, and the function it names, if any."""
    for route_method, pattern, name in _routes():
        found = pattern.match(path) if route_method == method else None
        if found is not None:
            return name, found.groupdict().get("FunctionName")
    return "Unknown", None


@cache
def _routes() -> list[tuple[str, re.Pattern[str], str]]:
    """Every operation of the Lambda model as (method, path pattern, name)."""
    model = botocore.session.get_session().get_service_model("lambda")
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        template = http["requestUri"].split("?")[0].rstrip("/")
        routes.append((http["method"], re.compile(f"^{_pattern(template)}/?$"), name))
    return routes


def _pattern(template: str) -> str:
    parts, last = [], 0
    for found in _PLACEHOLDER.finditer(template):
        parts.append(re.escape(template[last : found.start()]))
        parts.append(f"(?P<{found.group(1)}>{'.+' if found.group(2) else '[^/]+'})")
        last = found.end()
    parts.append(re.escape(template[last:]))
    return "".join(parts)
