"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent_argv(signum: signal.Signals) -> list[str]:
    """An argv prefix doing what `die_with_parent` does, then executing the rest.

    For children of a large process that starts many: a `preexec_fn` makes Python fork the
    whole parent (copying its page tables, with its event loop held meanwhile), where without
    one it can vfork. The signal stays armed across the exec that follows, as bubblewrap,
    slirp4netns and runsc are not set-user-id programs.
    """
    return ["/usr/bin/setpriv", f"--pdeathsig={signum.name.removeprefix('SIG')}", "--"]


def die_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """A `preexec_fn` asking the kernel to send `signum` to the child once its parent dies,
    even when the parent was killed with SIGKILL and could clean up nothing."""

    def arrange() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)

    return arrange
