"""Writes to the ledger from one dedicated thread, so the proxy's event loop never waits on disk.

Every ledger operation of a run goes through the same worker thread, in order: the store (an
SQLite connection, a psycopg connection) is opened, used and closed there. A write that fails is
not lost: the row is appended to a JSON-lines spill file next to the summary and reported once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from ci_guard.ledger.records import CallRecord
from ci_guard.secrets import redact

log = logging.getLogger("ci_guard.meter")


class LedgerRecorder:
    def __init__(self, open_store: Callable[[], Any] | None, spill_path: str | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ci-guard-ledger")
        self._store: Any = None
        self._spill_path = spill_path
        self.failures = 0
        if open_store is not None:
            self._store = self._pool.submit(open_store).result()

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a store method on the ledger thread and wait for its result (raises its errors)."""
        if self._store is None:
            return None
        return self._pool.submit(getattr(self._store, method), *args, **kwargs).result()

    def record_call(self, call: CallRecord) -> Future[None]:
        """Queue a call for the ledger; returns at once."""
        return self._pool.submit(self._record_call, call)

    def _record_call(self, call: CallRecord) -> None:
        if self._store is None:
            return
        try:
            self._store.record_call(call)
        except Exception as exc:  # keep metering even if the database hiccups; spill the row
            self.failures += 1
            if self.failures == 1:  # once, not once per call: a dead ledger must not flood the CI log
                where = f"; these calls go to {self._spill_path}" if self._spill_path else ""
                log.warning("ci-guard: could not write call %s to the ledger%s: %s", call.seq, where,
                            redact(str(exc)))
            self._spill(call)

    def _spill(self, call: CallRecord) -> None:
        if not self._spill_path:
            return
        row = asdict(call)
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self._spill_path)), exist_ok=True)
            with open(self._spill_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # the last resort failed too: say so loudly, with the row
            log.error("ci-guard: could not spill call %s to %s (%s): %s", call.seq, self._spill_path, exc,
                      redact(json.dumps(row, default=str)))

    def flush(self) -> None:
        """Wait until every queued write is done."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        if self.failures > 1:
            log.warning("ci-guard: %d calls in all could not be written to the ledger; see %s", self.failures,
                        self._spill_path or "the log above")
        if self._store is not None:
            try:
                self._pool.submit(self._store.close).result()
            except Exception as exc:
                log.warning("ci-guard: closing the ledger failed: %s", redact(str(exc)))
            self._store = None
        self._pool.shutdown(wait=True)
