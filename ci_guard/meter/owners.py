"""Which process owns a running run, so that a run whose process died is closed by the next one.

ci-guard killed with SIGKILL (or by the OOM killer) cannot finish its run: it would stay `running`
with its budget reservation held until the reservation's TTL. So each run leaves an owner file
(``.ci-guard/<run_id>.owner``: pid and the process's start time, which tells a reused pid apart);
the run removes it when it ends, and the next ``ci-guard run`` or ``start`` on this machine closes
every run whose owner is gone (status ``error``) and releases its reservation (issue 12 #15).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("ci_guard.meter")
SUFFIX = ".owner"


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return fields[19]  # field 22 of stat; the first two (pid, comm) are before the ")"
    except (OSError, IndexError):
        return None


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _start_time(pid)
    return start is None or now is None or now == start  # a different start time: the pid was reused


def claim(run_id: str, directory: str | os.PathLike[str]) -> None:
    """Record this process as the owner of ``run_id`` (best effort)."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        Path(directory, run_id + SUFFIX).write_text(json.dumps({"run_id": run_id, "pid": pid,
                                                                 "start": _start_time(pid)}))
    except OSError as exc:
        log.warning("ci-guard: could not record the owner of run %s: %s", run_id, exc)


def release(run_id: str, directory: str | os.PathLike[str]) -> None:
    with contextlib.suppress(OSError):
        Path(directory, run_id + SUFFIX).unlink()


def close_stale_runs(store: Any, directory: str | os.PathLike[str], now: datetime) -> list[str]:
    """Close (status ``error``) and settle every run of this ledger whose owner process is gone."""
    closed: list[str] = []
    try:
        paths = sorted(Path(directory).glob("*" + SUFFIX))
    except OSError:
        return closed
    for path in paths:
        try:
            data = json.loads(path.read_text())
            run_id, pid, start = str(data["run_id"]), int(data["pid"]), data.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid == os.getpid() or _alive(pid, start):
            continue
        try:
            run = store.get_run(run_id)
            if run is None:
                continue  # a run of another ledger: its own next command closes it
            if run.status == "running":
                store.finish_run(run_id, "error", None, now)
                closed.append(run_id)
            store.settle(run_id)
        except Exception as exc:  # the ledger is down: try again next time
            log.warning("ci-guard: could not close stale run %s: %s", run_id, exc)
            continue
        with contextlib.suppress(OSError):
            path.unlink()
    if closed:
        log.warning("ci-guard: closed %d run(s) whose ci-guard process had died: %s", len(closed),
                    ", ".join(closed))
    return closed


__all__ = ["claim", "close_stale_runs", "release"]
