"""The sandbox lifecycle as one table: the worker and the assignment table both obey it."""

from __future__ import annotations

import enum


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
