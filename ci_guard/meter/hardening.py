"""Make ci-guard's own process harder to read from the agent it supervises, and the agent's tree
die with ci-guard.

On Linux a process that is not "dumpable" has its /proc/<pid>/environ and memory owned by root, so
an agent running as the same (non-root) user cannot read the real provider keys out of ci-guard's
environment. This does not protect other processes of the job (the CI step's shell started
ci-guard with the keys in its environment): see docs/run.md, "What the agent can still reach".
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys

PR_SET_DUMPABLE = 4
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = 9) -> None:
    """In a child between fork and exec: get ``sig`` (SIGKILL) when the parent dies (Linux
    ``PR_SET_PDEATHSIG``).

    ci-guard killed with SIGKILL cannot end its agent itself; without this the agent would run on,
    orphaned, its calls failing against a proxy that is gone. Best effort elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)  # SIGKILL for an agent: the supervisor that would stop it is gone
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


# The watchdog: blocks reading a pipe only ci-guard holds the write end of. The kernel closes that
# end when ci-guard exits, however it exits (SIGKILL, the OOM killer), and the EOF wakes the
# watchdog, which kills the agent's whole process group. A POSIX shell and its builtins: ~1 ms of
# CPU per run, where a Python interpreter (even -I -S) took ~8 ms, on every launch.
_WATCHDOG = ("/bin/sh", "-c", 'while read -r _; do :; done; kill -s KILL -- "-$1" 2>/dev/null', "ci-guard-watchdog")


class GroupWatchdog:
    """Kills process group ``pgid`` (the agent and everything it started) when ci-guard dies.

    ``PR_SET_PDEATHSIG`` covers only the agent itself: its children and grandchildren (a shell's
    ``sleep &``, a test server) would be re-parented and run on. The watchdog is a tiny process in
    its own session, so a kill of ci-guard's process group does not take it along, and it holds no
    secret (argv: the group id). :meth:`close` (the run ended normally) lets it kill the group,
    which ci-guard does anyway at that point, and reaps it.
    """

    def __init__(self, pgid: int) -> None:
        read_end, self._write_end = os.pipe()  # both ends close-on-exec: the agent never holds one
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                # env={}: the watchdog is dumpable, so the agent (same user) can read its /proc/<pid>/environ,
                # which would otherwise be ci-guard's own, provider keys included
                [*_WATCHDOG, str(pgid)], stdin=read_end, env={},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
        except OSError:  # best effort: PDEATHSIG still covers the agent itself
            self._proc = None
        finally:
            os.close(read_end)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def close(self, timeout_s: float = 5.0) -> None:
        if self._write_end >= 0:
            os.close(self._write_end)
            self._write_end = -1
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout_s)
