"""What /proc says about a process: its start time, whether it exited unreaped, whether it lives.

One place for it because three mechanisms rely on the same facts: the stop key names the proxy by
pid *and* start time (a recycled pid is never signalled), `stop` waits for the proxy to end (a
zombie nobody reaps has ended), and stale runs are closed when their owner process is gone.
"""

from __future__ import annotations

import contextlib
import os


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after ``comm`` (state first), or None off Linux / when gone.

    ``comm`` may hold spaces and parentheses, so the split is after the last ")".
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), or None."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def is_zombie(pid: int) -> bool:
    """True when ``pid`` has exited but was not reaped (elsewhere than Linux: assume it has not)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


def alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` still runs — and, given the ``start`` time recorded for it, is still the same
    process (a different start time means the pid was reused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours would look alive; reap it if it is one.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    # A zombie that is not our child (started by another CI step, in a container whose PID 1 never
    # reaps) still answers signal 0: it has exited all the same.
    if is_zombie(pid):
        return False
    now = start_time(pid)
    return start is None or now is None or now == start


__all__ = ["alive", "is_zombie", "start_time"]
