"""Writes to the ledger from one dedicated thread, so the proxy's event loop never waits on disk.

Every ledger operation of a run goes through the same worker thread, in order: the store (an
SQLite connection, a psycopg connection) is opened, used and closed there. A write that fails is
not lost: the row is appended to a JSON-lines spill file next to the summary and reported once.

A writer *process* instead of the thread was measured and dropped (BENCHMARKS.md, "Metering
proxy"): on a 2-core runner the extra process competes for the cores with the agent and the
proxy, which cost more than the GIL it frees (32 clients: 7.2 vs 5.2 ms added), and it added
~145 ms to every run's start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, Protocol

from ci_guard.ledger.records import CallRecord
from ci_guard.secrets import redact

log = logging.getLogger("ci_guard.meter")

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

    def record_calls(self, calls: list[CallRecord]) -> None:
        """Write a batch in one transaction; if that fails, call by call, so only a bad one spills."""
        if len(calls) > 1:
            try:
                self.store.record_calls(calls)
                return
            except Exception:
                pass
        for call in calls:
            self.record_call(call)

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
        # Calls wait here for the ledger thread, which takes all of them at once: under load (many
        # parallel calls) they share one transaction and one commit instead of one each.
        self._queue: list[CallRecord] = []
        self._queue_lock = threading.Lock()
        self._pending: Future[None] | None = None  # the drain that will take what is queued
        self._failures_at_close = 0
        if open_store is not None:
            store = self._pool.submit(open_store).result()
            self._writer = LedgerWriter(store, spill_path)

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    @property
    def failures(self) -> int:
        """Calls that could not be written to the ledger (they are in the spill file)."""
        return self._writer.failures if self._writer is not None else self._failures_at_close

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a store method on the ledger thread and wait for its result (raises its errors)."""
        if self._writer is None:
            return None
        return self._pool.submit(getattr(self._writer.store, method), *args, **kwargs).result()

    def record_call(self, call: CallRecord) -> Future[None]:
        """Queue a call for the ledger; returns at once (the future is done once it is written)."""
        if self._writer is None:
            return _DONE
        with self._queue_lock:
            self._queue.append(call)
            if self._pending is None:
                self._pending = self._pool.submit(self._drain)
            return self._pending

    def _drain(self) -> None:
        with self._queue_lock:
            batch, self._queue, self._pending = self._queue, [], None
        if batch and self._writer is not None:
            self._writer.record_calls(batch)

    def flush(self) -> None:
        """Wait until every queued write is done."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        if self._writer is not None:
            self._pool.submit(self._writer.close).result()
            self._failures_at_close, self._writer = self._writer.failures, None
        self._pool.shutdown(wait=True)


def open_recorder(ledger_url: str | None, spill_path: str | None) -> Recorder:
    """The recorder of a run: the ledger on a thread of this process, or a no-op without a ledger."""
    from ci_guard.ledger import open_ledger

    if not ledger_url:
        return LedgerRecorder(None)
    return LedgerRecorder(lambda: open_ledger(ledger_url), spill_path=spill_path)
