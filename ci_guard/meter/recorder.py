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
from dataclasses import asdict, astuple, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from ci_guard.files import write_text_atomic
from ci_guard.ledger.records import CallRecord
from ci_guard.meter.inflight import InflightJournal, journal_path_for
from ci_guard.pricing.usage import Usage
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
    def on_failure(self, callback: Callable[[str], None] | None) -> None: ...
    def spill_row(self, row: dict[str, Any]) -> None: ...
    def replay(self) -> int: ...


class LedgerWriter:
    """The write-or-spill logic both recorders run (on their thread, or in the writer process)."""

    def __init__(self, store: Any, spill_path: str | None,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.spill_path = spill_path
        self.failures = 0
        self.on_failure = on_failure  # told (from this thread) each time a write fails
        self.replayed = 0

    def record_calls(self, calls: list[CallRecord]) -> None:
        """Write a batch in one transaction; if that fails, call by call, so only a bad one spills."""
        failures = self.failures
        self._write(calls)
        if failures and self.failures == failures and self.spill_path:
            # The ledger failed earlier and has just taken a write: it is back, so what went to the
            # spill file meanwhile goes in now (not while it is down: each try could wait on a timeout).
            self.replayed += replay_spill(self.store, self.spill_path).replayed

    def _write(self, calls: list[CallRecord]) -> None:
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
            if self.on_failure is not None:
                self.on_failure(redact(f"{type(exc).__name__}: {exc}"))

    def spill(self, call: CallRecord) -> None:
        if not self.spill_path:
            return
        self.spill_row(asdict(call))

    def spill_row(self, row: dict[str, Any]) -> None:
        """Append one JSON line to the spill file (a call, or a run's ``finish`` marker)."""
        if not self.spill_path:
            return
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.spill_path)), exist_ok=True)
            with open(self.spill_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row, default=str) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:  # the last resort failed too: say so loudly, with the row
            log.error("ci-guard: could not spill a row to %s (%s): %s", self.spill_path, exc,
                      redact(json.dumps(row, default=str)))

    def close(self) -> None:
        if self.failures > 1:
            log.warning("ci-guard: %d calls in all could not be written to the ledger; see %s", self.failures,
                        self.spill_path or "the log above")
        try:
            self.store.close()
        except Exception as exc:
            log.warning("ci-guard: closing the ledger failed: %s", redact(str(exc)))


@dataclass
class Replay:
    replayed: int = 0  # rows written to the ledger (calls, finished runs)
    left: int = 0  # rows still in the file (the ledger refused them: down, or another ledger's run)


def _call_from_row(row: dict[str, Any]) -> CallRecord:
    """A spilled call, checked: a spill file sits where the agent can write, so a row must not be
    able to *lower* spend (negative cost or tokens) when it is replayed into the budgets."""
    usage = Usage(**{k: int(v) for k, v in row.pop("usage").items()})
    if any(v < 0 for v in astuple(usage)):
        raise ValueError("negative token count")
    row["cost_usd"] = Decimal(str(row["cost_usd"]))
    if not row["cost_usd"].is_finite() or row["cost_usd"] < 0:
        raise ValueError("negative or non-finite cost")
    for name in ("started_at", "ended_at"):
        row[name] = datetime.fromisoformat(row[name])
    return CallRecord(usage=usage, **row)


def replay_spill(store: Any, path: str | os.PathLike[str]) -> Replay:
    """Write the rows of a spill file into ``store``; keep in the file only what it refused.

    Calls are idempotent (a run's call is keyed by its seq, written once), so a replay that is
    interrupted and run again counts nothing twice. ``finish`` rows close a run whose end could not
    be written, and release its reservation.
    """
    result = Replay()
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return result
    keep: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row.get("kind") == "finish":
                store.finish_run(row["run_id"], row["status"], row.get("stop_reason"),
                                 datetime.fromisoformat(row["ended_at"]))
                store.settle(row["run_id"])
            else:
                store.record_call(_call_from_row(row))
            result.replayed += 1
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ci-guard: %s: skipped a malformed spilled row", path)  # never replayed, never kept
        except Exception:
            keep.append(line)
    result.left = len(keep)
    try:
        if keep:
            write_text_atomic(path, "\n".join(keep) + "\n")
        else:
            os.unlink(path)
    except OSError as exc:
        log.warning("ci-guard: could not update the spill file %s: %s", path, exc)
    return result


def replay_spill_files(store: Any, directory: str | os.PathLike[str]) -> Replay:
    """:func:`replay_spill` for every ``*.unrecorded.jsonl`` in ``directory`` (at the start of a run)."""
    total = Replay()
    try:
        paths = sorted(Path(directory).glob("*.unrecorded.jsonl"))
    except OSError:
        return total
    for path in paths:
        one = replay_spill(store, path)
        total.replayed += one.replayed
        total.left += one.left
    if total.replayed:
        log.warning("ci-guard: %d spilled rows from earlier runs were written to the ledger", total.replayed)
    return total


class LedgerRecorder:
    """The ledger on one dedicated thread of this process."""

    def __init__(self, open_store: Callable[[], Any] | None, spill_path: str | None = None,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ci-guard-ledger")
        self._writer: LedgerWriter | None = None
        # Calls wait here for the ledger thread, which takes all of them at once: under load (many
        # parallel calls) they share one transaction and one commit instead of one each.
        self._queue: list[CallRecord] = []
        self._queue_lock = threading.Lock()
        self._pending: Future[None] | None = None  # the drain that will take what is queued
        self._failures_at_close = 0
        # the calls in flight, for the run that closes this one if this process is killed (inflight.py)
        self.journal: InflightJournal | None = None
        if open_store is not None:
            store = self._pool.submit(open_store).result()
            self._writer = LedgerWriter(store, spill_path, on_failure)
            if spill_path:
                self.journal = InflightJournal(journal_path_for(spill_path))

    def on_failure(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback(detail)`` (on the ledger thread) whenever a write fails."""
        if self._writer is not None:
            self._writer.on_failure = callback

    def spill_row(self, row: dict[str, Any]) -> None:
        """Append a row to the spill file (from the ledger thread, after what is queued)."""
        if self._writer is not None:
            self._pool.submit(self._writer.spill_row, row).result()

    def replay(self) -> int:
        """Replay the spill file now (the ledger may be back); how many rows went in."""
        if self._writer is None or not self._writer.spill_path:
            return 0
        writer = self._writer
        return self._pool.submit(lambda: replay_spill(writer.store, writer.spill_path).replayed).result()

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
        if self.journal is not None:
            self.journal.settled(call.seq)  # its row is queued: written or spilled before close() returns
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
        if self.journal is not None:
            self.journal.close()


def open_recorder(ledger_url: str | None, spill_path: str | None, store: Any = None) -> Recorder:
    """The recorder of a run: the ledger on a thread of this process, or a no-op without a ledger.

    ``store``: an open store of ``ledger_url`` to write through (the recorder owns it from then on,
    and uses it from its thread only); else the recorder opens its own.
    """
    from ci_guard.ledger import open_ledger

    if not ledger_url:
        return LedgerRecorder(None)
    if store is not None:
        return LedgerRecorder(lambda: store, spill_path=spill_path)
    return LedgerRecorder(lambda: open_ledger(ledger_url), spill_path=spill_path)
