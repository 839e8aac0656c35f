"""Which process owns a running run, so that a run whose process died is closed by the next one.

ci-guard killed with SIGKILL (or by the OOM killer) cannot finish its run: it would stay `running`
with its budget reservation held until the reservation's TTL. So the process that meters a run
(`ci-guard run`, or the detached proxy of `start`) records itself on the run's ledger row: its pid,
that process's start time (which tells a reused pid apart) and its host. The next ``ci-guard run``
or ``start`` on the same host closes every running run whose owner is gone (status ``error``) and
releases its reservation (issue 12 #15).

Nothing here reads a file: an owner file in the workspace (as before) could be forged by the agent
to name a dead pid and make the next run close another, live run. The host is the hostname, the
boot id and the pid namespace: a pid means nothing on another machine, after a reboot or in another
container, so runs owned elsewhere are never judged from here (their reservations expire with
their TTL).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ci_guard.meter.procs import alive as _alive
from ci_guard.meter.procs import start_time as process_start_time

log = logging.getLogger("ci_guard.meter")


def host_id() -> str:
    """This machine, boot and pid namespace: where a recorded pid means this process table."""
    boot = ""
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
        boot = fh.read().strip()
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = os.readlink("/proc/self/ns/pid")
    return f"{socket.gethostname()}/{boot}/{namespace}"


def this_process() -> tuple[int, str | None, str]:
    """(pid, start time, host) of the calling process, as :meth:`Store.set_run_owner` takes them."""
    pid = os.getpid()
    return pid, process_start_time(pid), host_id()


def claim(recorder: Any, run_id: str) -> None:
    """Record this process as the owner of ``run_id`` through ``recorder`` (best effort: a ledger
    that cannot take it leaves the run to its reservation's TTL if this process dies)."""
    try:
        recorder.call("set_run_owner", run_id, *this_process())
    except Exception as exc:
        log.warning("ci-guard: could not record the owner of run %s: %s", run_id, exc)


def close_stale_runs(store: Any, now: datetime, before_close: Callable[[str], Any] | None = None) -> list[str]:
    """Close (status ``error``) and settle every running run of this host whose owner process is gone.

    ``before_close(run_id)`` runs first (it charges the calls the dead process had in flight, while
    the run still holds its reservation); if it fails, the run stays for the next try.
    """
    closed: list[str] = []
    try:
        owned = store.running_runs_owned_on(host_id())
    except Exception as exc:  # the ledger is down: try again next time
        log.warning("ci-guard: could not look for stale runs: %s", exc)
        return closed
    for run_id, pid, start in owned:
        if pid == os.getpid() or _alive(pid, start):
            continue
        try:
            if before_close is not None:
                before_close(run_id)
            store.finish_run(run_id, "error", None, now)
            store.settle(run_id)
        except Exception as exc:
            log.warning("ci-guard: could not close stale run %s: %s", run_id, exc)
            continue
        closed.append(run_id)
    if closed:
        log.warning("ci-guard: closed %d run(s) whose ci-guard process had died: %s", len(closed),
                    ", ".join(closed))
    return closed


__all__ = ["claim", "close_stale_runs", "host_id", "this_process"]
