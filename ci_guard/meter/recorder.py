"""Writes to the ledger off the proxy's event loop, so the loop never waits on the database.

Two recorders with one interface (``enabled``, ``failures``, ``record_call``, ``call``, ``flush``,
``close``):

* :class:`ProcessLedgerRecorder` (what ``ci-guard run`` and ``start`` use): a writer *process*
  (:mod:`ci_guard.meter.ledger_writer`) holds the store; the proxy sends it each call over a
  socket pair. The writer's Python work (row building, SQL, commit) then never competes with the
  event loop for the GIL; measured, that was 0.03–0.06 ms of the proxy's added latency.
* :class:`LedgerRecorder`: one dedicated thread in this process (no ledger, tests, the fallback
  when a writer process cannot be started).

Either way every operation of a run is applied in order, and a write that fails is not lost: the
row goes to a JSON-lines spill file next to the summary, and the failure is reported once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ci_guard.errors import LedgerError, LedgerUnavailableError
from ci_guard.ledger.records import CallRecord
from ci_guard.secrets import redact, registered

log = logging.getLogger("ci_guard.meter")

WRITER_START_TIMEOUT_S = 60.0  # opening a PostgreSQL ledger may wait on the network
_DONE: Future[None] = Future()
_DONE.set_result(None)


class Recorder(Protocol):
    """What the proxy and the run lifecycle use of a recorder."""

    @property
    def enabled(self) -> bool: ...
    @property
    def failures(self) -> int: ...
    def record_call(self, call: CallRecord) -> Future[None]: ...
    def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class LedgerWriter:
    """The write-or-spill logic both recorders run (on their thread, or in the writer process)."""

    def __init__(self, store: Any, spill_path: str | None) -> None:
        self.store = store
        self.spill_path = spill_path
        self.failures = 0

    def record_call(self, call: CallRecord) -> None:
        try:
            self.store.record_call(call)
        except Exception as exc:  # keep metering even if the database hiccups; spill the row
            self.failures += 1
            if self.failures == 1:  # once, not once per call: a dead ledger must not flood the CI log
                where = f"; these calls go to {self.spill_path}" if self.spill_path else ""
                log.warning("ci-guard: could not write call %s to the ledger%s: %s", call.seq, where,
                            redact(str(exc)))
            self.spill(call)

    def spill(self, call: CallRecord) -> None:
        if not self.spill_path:
            return
        row = asdict(call)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.spill_path)), exist_ok=True)
            with open(self.spill_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # the last resort failed too: say so loudly, with the row
            log.error("ci-guard: could not spill call %s to %s (%s): %s", call.seq, self.spill_path, exc,
                      redact(json.dumps(row, default=str)))

    def close(self) -> None:
        if self.failures > 1:
            log.warning("ci-guard: %d calls in all could not be written to the ledger; see %s", self.failures,
                        self.spill_path or "the log above")
        try:
            self.store.close()
        except Exception as exc:
            log.warning("ci-guard: closing the ledger failed: %s", redact(str(exc)))


class LedgerRecorder:
    """The ledger on one dedicated thread of this process."""

    def __init__(self, open_store: Callable[[], Any] | None, spill_path: str | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ci-guard-ledger")
        self._writer: LedgerWriter | None = None
        if open_store is not None:
            store = self._pool.submit(open_store).result()
            self._writer = LedgerWriter(store, spill_path)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    @property
    def failures(self) -> int:
        return self._writer.failures if self._writer is not None else 0

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a store method on the ledger thread and wait for its result (raises its errors)."""
        if self._writer is None:
            return None
        return self._pool.submit(getattr(self._writer.store, method), *args, **kwargs).result()

    def record_call(self, call: CallRecord) -> Future[None]:
        """Queue a call for the ledger; returns at once."""
        if self._writer is None:
            return _DONE
        return self._pool.submit(self._writer.record_call, call)

    def flush(self) -> None:
        """Wait until every queued write is done."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        if self._writer is not None:
            self._pool.submit(self._writer.close).result()
            self._writer = None
        self._pool.shutdown(wait=True)


class ProcessLedgerRecorder:
    """The ledger in a writer process (:mod:`ci_guard.meter.ledger_writer`), fed over a socket pair.

    Calls are sent as they end and written at once by the writer, in order. When this process dies
    (even by SIGKILL), the writer still writes what it had received, then exits on end-of-file. When
    the writer dies, this process takes over on a thread (:class:`LedgerRecorder`) and sends it every
    call the writer had not confirmed: writing a call twice counts it once (the store ignores a
    repeated run id and sequence number), so nothing is lost and nothing is counted twice.
    """

    enabled = True

    def __init__(self, ledger_url: str, spill_path: str | None = None) -> None:
        self._url, self._spill_path = ledger_url, spill_path
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ci_guard.meter.ledger_writer", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._lock = threading.Lock()  # one message at a time, whichever thread sends it
        self._unconfirmed: list[CallRecord] = []  # sent, not yet confirmed written by a flush
        self._fallback: Recorder | None = None  # this process's own writer once the process is gone
        self._writer_failures = 0
        # The URL (it may hold a password) and the registered secrets go over the socket, never
        # on a command line other users could read in /proc.
        self._conn.send((ledger_url, spill_path, registered()))
        reply = self._wait(WRITER_START_TIMEOUT_S, "start")
        if reply[0] != "ready":
            self._proc.wait(10)
            self._conn.close()
            raise LedgerUnavailableError(reply[1])

    @property
    def failures(self) -> int:
        return self._writer_failures + (self._fallback.failures if self._fallback is not None else 0)

    def record_call(self, call: CallRecord) -> Future[None]:
        """Send a call to the writer; returns at once (the writer commits it right away)."""
        if self._fallback is None:
            try:
                with self._lock:
                    self._conn.send(("record", call))
                    self._unconfirmed.append(call)
                return _DONE
            except OSError:
                self._take_over()
        assert self._fallback is not None
        return self._fallback.record_call(call)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a store method in the writer and wait for its result (raises a LedgerError on failure)."""
        reply = self._request(("call", method, args, kwargs))
        if reply is None:
            assert self._fallback is not None
            return self._fallback.call(method, *args, **kwargs)
        if reply[0] == "error":
            raise LedgerError(reply[1])
        return reply[1]

    def flush(self) -> None:
        """Wait until everything sent so far is written."""
        if self._request(("flush",)) is None:
            assert self._fallback is not None
            self._fallback.flush()

    def close(self) -> None:
        reply = self._request(("close",)) if self._fallback is None else None
        if reply is not None:
            self._writer_failures = int(reply[1] or 0)
        self._conn.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._fallback is not None:
            self._fallback.close()

    def _request(self, message: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The writer's answer, or None when the writer is gone (the fallback has taken over)."""
        if self._fallback is None:
            try:
                with self._lock:
                    self._conn.send(message)
                    reply = self._conn.recv()
                    if message[0] in ("flush", "close"):
                        self._unconfirmed.clear()  # the writer answers only once all before is written
                    return reply
            except (OSError, EOFError):
                self._take_over()
        return None

    def _wait(self, timeout: float, what: str) -> tuple[Any, ...]:
        if not self._conn.poll(timeout):
            self._proc.kill()
            raise LedgerUnavailableError(f"the ledger writer did not {what} within {timeout:g}s")
        try:
            return self._conn.recv()
        except EOFError:
            raise LedgerUnavailableError(f"the ledger writer exited (status {self._proc.wait(10)}) before it "
                                         f"could {what}") from None

    def _take_over(self) -> None:
        """The writer died: write from this process, starting with what it may not have written."""
        from ci_guard.ledger import open_ledger

        status = self._proc.poll()
        try:
            self._fallback = LedgerRecorder(lambda: open_ledger(self._url), spill_path=self._spill_path)
            how = "writing from this process instead"
        except Exception as exc:  # the ledger itself is unreachable now: keep the calls in the spill file
            self._fallback = _SpillOnly(self._spill_path)
            how = f"the ledger cannot be opened either ({redact(str(exc))}); calls go to {self._spill_path}"
        log.warning("ci-guard: the ledger writer process exited unexpectedly (status %s); %s", status, how)
        pending, self._unconfirmed = self._unconfirmed, []
        for call in pending:
            self._fallback.record_call(call)


class _SpillOnly:
    """The last resort when neither the writer nor the ledger is there: every call to the spill file."""

    enabled = True

    def __init__(self, spill_path: str | None) -> None:
        self._writer = LedgerWriter(None, spill_path)

    @property
    def failures(self) -> int:
        return self._writer.failures

    def record_call(self, call: CallRecord) -> Future[None]:
        self._writer.failures += 1
        self._writer.spill(call)
        return _DONE

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise LedgerError(f"the ledger is unreachable; cannot {method}")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._writer.failures:
            log.warning("ci-guard: %d calls in all could not be written to the ledger; see %s",
                        self._writer.failures, self._writer.spill_path or "the log above")


def open_recorder(ledger_url: str | None, spill_path: str | None) -> Recorder:
    """The recorder for a run: a writer process for a ledger (``CI_GUARD_LEDGER_WRITER=thread`` keeps
    it on a thread of this process), a no-op recorder without one."""
    from ci_guard.ledger import open_ledger

    if not ledger_url:
        return LedgerRecorder(None)
    if os.environ.get("CI_GUARD_LEDGER_WRITER", "process").strip().lower() == "thread":
        return LedgerRecorder(lambda: open_ledger(ledger_url), spill_path=spill_path)
    return ProcessLedgerRecorder(ledger_url, spill_path)
