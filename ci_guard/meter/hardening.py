"""Make ci-guard's own process harder to read from the agent it supervises.

On Linux a process that is not "dumpable" has its /proc/<pid>/environ and memory owned by root, so
an agent running as the same (non-root) user cannot read the real provider keys out of ci-guard's
environment. This does not protect other processes of the job (the CI step's shell started
ci-guard with the keys in its environment): see docs/run.md, "What the agent can still reach".
"""

from __future__ import annotations

import ctypes
import sys

PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child between fork and exec: be killed when the parent dies (Linux ``PR_SET_PDEATHSIG``).

    ci-guard killed with SIGKILL cannot end its agent itself; without this the agent would run on,
    orphaned, its calls failing against a proxy that is gone. Best effort elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL: the supervisor that would stop it is gone
    except (OSError, AttributeError):
        pass


def make_undumpable() -> bool:
    """Best effort; True when the kernel accepted it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
