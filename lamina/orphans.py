"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """A `preexec_fn` asking the kernel to send `signum` to the child once its parent dies,
    even when the parent was killed with SIGKILL and could clean up nothing."""

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)

    return arrange
