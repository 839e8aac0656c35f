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


def make_undumpable() -> bool:
    """Best effort; True when the kernel accepted it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
