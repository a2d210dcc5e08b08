"""The sandbox lifecycle as one table: the worker and the assignment table both obey it.

The runtime inside has its own states on the Runtime API, in a second table below.
"""

from __future__ import annotations

import enum

# Lambda's limit on the init phase: a runtime not ready by then has failed its start.
INIT_TIMEOUT_S = 10.0


class SandboxState(enum.Enum):
    INITIALISING = "initialising"
    IDLE = "idle"
    BUSY = "busy"
    DEAD = "dead"


ALLOWED: dict[SandboxState, frozenset[SandboxState]] = {
    SandboxState.INITIALISING: frozenset({SandboxState.IDLE, SandboxState.DEAD}),
    SandboxState.IDLE: frozenset({SandboxState.BUSY, SandboxState.DEAD}),
    SandboxState.BUSY: frozenset({SandboxState.IDLE, SandboxState.DEAD}),
    SandboxState.DEAD: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, sandbox_id: str, current: SandboxState, wanted: SandboxState) -> None:
        super().__init__(
            f"sandbox {sandbox_id} is {current.value}; it cannot become {wanted.value}"
        )
        self.current = current
        self.wanted = wanted


class Lifecycle:
    """The state of one sandbox; every change goes through `to`, which checks the table."""

    __slots__ = ("sandbox_id", "state")

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self.state = SandboxState.INITIALISING

    def to(self, wanted: SandboxState) -> None:
        if wanted not in ALLOWED[self.state]:
            raise IllegalTransition(self.sandbox_id, self.state, wanted)
        self.state = wanted

    @property
    def dead(self) -> bool:
        return self.state is SandboxState.DEAD


class RuntimeState(enum.Enum):
    """The runtime's side of the Runtime API, in Lambda's names (its error messages show them).

    Each call moves the runtime to a state; READY and the answering states are passed through
    at once (a `next` that waits leaves the state as it was).
    """

    STARTED = "Started"
    READY = "Ready"
    RUNNING = "Running"
    INVOCATION_RESPONSE = "InvocationResponse"
    INVOCATION_ERROR = "InvocationErrorResponse"
    RESPONSE_SENT = "RuntimeResponseSentState"
    INIT_ERROR = "InitError"


# The states each call may be made from: `next` (READY), a response, an error, an init error.
RUNTIME_ALLOWED_FROM: dict[RuntimeState, frozenset[RuntimeState]] = {
    RuntimeState.READY: frozenset({RuntimeState.STARTED, RuntimeState.RESPONSE_SENT}),
    RuntimeState.INVOCATION_RESPONSE: frozenset({RuntimeState.RUNNING}),
    RuntimeState.INVOCATION_ERROR: frozenset({RuntimeState.RUNNING}),
    RuntimeState.INIT_ERROR: frozenset({RuntimeState.STARTED}),
}
