"""The ledger logic shared by the SQLite and PostgreSQL stores.

Both backends run the same SQL (``?`` placeholders, ``{false}``/``{true}`` literals, translated per
backend); they differ in how a write transaction takes its locks:

* SQLite: ``BEGIN IMMEDIATE`` takes the database write lock up front, so a reservation's read of
  spent + outstanding and its insert are one serial step.
* PostgreSQL: the rollup rows of every key are upserted and locked (``SELECT ... FOR UPDATE``) in
  one fixed order (budget, scope key, period start, sorted in Python, not by the server's
  collation) by ``reserve`` and ``settle``, so two transactions never wait on each other in a
  cycle; deadlocks and serialization failures are retried anyway.

Escrow: a run reserves from its budget rows once (``reserve``); its calls then add their cost to the
run's *own* reservation rows (``escrow_micros``, ``escrow_calls``), never to the organisation-wide
``budget_rollups`` rows, so 32 runs of one budget append in parallel instead of queueing on one row.
``settle`` (and the expiry of an abandoned run's reservation, found by the next ``reserve`` of the
bucket) moves the escrow into the rollup exactly once: the reservation row flips to settled in the
same transaction, under the rollup row's lock. Reads of a bucket's spend are ``rollup + escrow of
unsettled reservations`` in one statement (one snapshot), so a settle in between never hides or
doubles a run's spend. A run without an open reservation on a key (imported usage, an expired
hold) still adds to the rollup directly. The proxy caps each run at what it reserved, so a run's
escrow never passes its hold.

Money is integer micro-dollars in storage and Decimal outside.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

from ci_guard.context.model import RunContext
from ci_guard.errors import BudgetExceededError, CiGuardError, InvalidInputError, LedgerError
from ci_guard.ledger import migrations
from ci_guard.ledger.analytics import AnalyticsMixin
from ci_guard.ledger.budgets import budget_spec, empty_status
from ci_guard.ledger.periods import as_utc
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.ledger.store import BudgetKey, Reservation, RunOwner
from ci_guard.policy import inputs
from ci_guard.policy.decision import BudgetStatus
from ci_guard.pricing.usage import Usage

if TYPE_CHECKING:
    from ci_guard.policy.models import Budget

T = TypeVar("T")
MICROS = Decimal(1_000_000)
TOKEN_COLS = ("input_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cache_read_tokens",
              "output_tokens", "reasoning_tokens")
RUN_COLS = ("run_id", "started_at", "ended_at", "decision", "status", "org", "team", "repo", "actor",
            "workflow", "agent", "environment", "trigger_name", "pr", "branch", "cohort", "platform",
            "rule", "reason", "model", "limits_json", "stop_reason", "outcome", "agent_exit_code",
            "session_id", "enforced", "run_url", "turns", "tool_calls", "cost_micros", *TOKEN_COLS, "web_searches",
            "context_saved_micros", "decision_inputs_json")
# export_calls joins the run to every call: leave out its (kilobyte-sized) decision inputs
EXPORT_RUN_COLS = RUN_COLS[:-1]
CALL_COLS = ("run_id", "seq", "started_at", "ended_at", "provider", "endpoint", "model_requested",
             "model_served", *TOKEN_COLS, "cost_micros", "status", "http_status", "stream", "tool_calls",
             "context_tokens", "latency_ms", "fingerprint", "error", "session_id", "is_turn", "web_searches",
             "service_tier", "estimated", "context_json", "context_saved_micros", "inference_geo")
# the columns of a call `what-if` replays (ci_guard.preview.replay reads them by position)
REPLAY_CALL_COLS = ("run_id", "seq", "is_turn", "status", "cost_micros", "context_tokens", "fingerprint",
                    "http_status", "error", "tool_calls", "model_served", "provider", "service_tier",
                    "web_searches", *TOKEN_COLS)
EXPORT_PAGE = 5000  # calls per read of export_calls
# the columns of a call and of its run that the FOCUS export reads (export_rows), in this order
EXPORT_CALL_COLS = ("run_id", "seq", "started_at", "ended_at", "provider", "endpoint", "model_requested",
                    "model_served", *TOKEN_COLS, "cost_micros", "status", "web_searches", "service_tier",
                    "context_json", "context_saved_micros")
EXPORT_ROW_RUN_COLS = ("org", "team", "repo", "actor", "workflow", "agent", "environment", "trigger_name", "pr",
                       "branch", "cohort", "platform", "rule", "status", "stop_reason", "outcome", "enforced")
EXPORT_ROW_COLS = EXPORT_CALL_COLS + tuple(f"run_{c}" for c in EXPORT_ROW_RUN_COLS)
_ADD_TO_RUN = ("UPDATE runs SET turns = turns + ?, tool_calls = tool_calls + ?, cost_micros = cost_micros + ?, "
               + ", ".join(f"{c} = {c} + ?" for c in TOKEN_COLS)
               + ", web_searches = web_searches + ?, context_saved_micros = context_saved_micros + ?"
               # a call after the run's rollup (a late write, a spool replayed after the finish) voids it
               ", rollup_calls = NULL WHERE run_id = ?")
REPORT_GROUPS = {"repo": "repo", "org": "org", "team": "team", "user": "actor", "agent": "agent",
                 "model": "model", "workflow": "workflow", "status": "status"}

# What is held but not spent yet: the unspent part of every open reservation that has not expired
_HELD = "CASE WHEN expires_at > ? AND amount_micros > used_micros THEN amount_micros - used_micros ELSE 0 END"
# One bucket: (rollup spend + escrow of open runs, outstanding holds), in one statement, so one snapshot
_BUCKET = (
    "SELECT COALESCE((SELECT spent_micros FROM budget_rollups WHERE budget = ? AND scope_key = ?"
    " AND period_start = ?), 0) + COALESCE(SUM(escrow_micros), 0), COALESCE(SUM(" + _HELD + "), 0)"
    " FROM reservations WHERE budget = ? AND scope_key = ? AND period_start = ? AND settled = {false}"
)
# Every scope key of a budget's period: rollup + escrow, calls, runs, outstanding holds
_BUCKET_ROWS = (
    "SELECT b.scope_key, b.spent_micros + COALESCE(o.escrow, 0), b.calls + COALESCE(o.calls, 0), b.runs,"
    " COALESCE(o.held, 0) FROM budget_rollups b LEFT JOIN (SELECT scope_key, SUM(escrow_micros) AS escrow,"
    " SUM(escrow_calls) AS calls, SUM(" + _HELD + ") AS held FROM reservations WHERE budget = ?"
    " AND period_start = ? AND settled = {false} GROUP BY scope_key) o ON o.scope_key = b.scope_key"
    " WHERE b.budget = ? AND b.period_start = ? ORDER BY 2 DESC, b.scope_key"
)
# a reservation row's key is one its run charges (run_budget_keys): then ? goes to the escrow, else 0
_IF_CHARGED = ("CASE WHEN EXISTS (SELECT 1 FROM run_budget_keys k WHERE k.run_id = reservations.run_id"
               " AND k.budget = reservations.budget AND k.scope_key = reservations.scope_key"
               " AND k.period_start = reservations.period_start) THEN ? ELSE 0 END")
# a batch of calls: rows per INSERT (x 34 columns stays under SQLite's 32,766 bound parameters)
_INSERT_CHUNK = 200


def to_micros(amount: Decimal | int | str) -> int:
    return int((Decimal(amount) * MICROS).to_integral_value(rounding=ROUND_HALF_UP))


def from_micros(micros: int | None) -> Decimal:
    return Decimal(micros or 0) / MICROS


class Tx:
    """A cursor with the backend's SQL dialect applied."""

    def __init__(self, cursor: Any, translate: Callable[[str], str]) -> None:
        self.cursor = cursor
        self._q = translate

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cursor.execute(self._q(sql), tuple(params))
        return self.cursor.rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.cursor.execute(self._q(sql), tuple(params))
        return self.cursor.fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cursor.execute(self._q(sql), tuple(params))
        return list(self.cursor.fetchall())

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(self._q(sql), [tuple(r) for r in rows])


class ExportSnapshot:
    """The reads of a bulk export inside one snapshot (:meth:`SqlStore.export_snapshot`)."""

    def __init__(self, store: SqlStore, tx: Tx) -> None:
        self.backend = store.backend
        self.encoding = store._encoding(tx)  # of the text values read
        self._store, self._tx = store, tx

    def ts(self, moment: datetime) -> Any:
        """``moment`` as the backend stores times (to compare with ``started_at``)."""
        return self._store._ts(moment)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._tx.all(sql, params)

    def rows(self, sql: str, params: Sequence[Any], page: int) -> Iterator[list[tuple[Any, ...]]]:
        """``sql``'s rows in pages of ``page``, streamed by one query (PostgreSQL: ``COPY ... TO
        STDOUT``, every value as text), so the database sorts once; nothing else may be read
        until the last page."""
        return self._store._stream(self._tx, sql, params, page)

    def lines(self, sql: str, params: Sequence[Any], page: int) -> Iterator[tuple[int, bytes]]:
        """PostgreSQL: like :meth:`rows` for a query of one text column that is never NULL, each page
        as its count of rows and their values joined, as the server holds them in :attr:`encoding`:
        no Python object per row."""
        return self._store._stream_lines(self._tx, sql, params, page)


class SqlStore(AnalyticsMixin):
    """A :class:`ci_guard.ledger.store.Store` over a DB-API connection; subclasses supply the dialect."""

    backend = "sql"
    placeholder = "?"
    true_sql, false_sql = "1", "0"
    lock_suffix = ""  # " FOR UPDATE" where row locks exist
    retries = 1

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()  # the proxy writes from worker threads: one transaction at a time
        # run_id -> its budget buckets in lock order; fixed when the run starts, so read once per run
        self._run_keys: dict[str, list[tuple[Any, ...]]] = {}

    # --- dialect hooks ----------------------------------------------------------------------------
    def _transaction(self, write: bool) -> AbstractContextManager[Tx]:
        raise NotImplementedError

    def _retryable(self, exc: BaseException) -> bool:
        return False

    def _translate_error(self, exc: BaseException) -> CiGuardError | None:
        """A ci-guard error for a database exception, or None when it is not a database error."""
        raise NotImplementedError

    def _ts(self, moment: datetime | None) -> Any:
        return None if moment is None else as_utc(moment)

    def _dt(self, value: Any) -> datetime | None:
        return None if value is None else as_utc(value)

    def _bool(self, value: bool) -> Any:
        return bool(value)

    def _q(self, sql: str) -> str:
        return _translate(sql, self.placeholder, self.true_sql, self.false_sql)

    # --- transactions -----------------------------------------------------------------------------
    def _op(self, fn: Callable[[Tx], T], write: bool = True) -> T:
        for attempt in range(self.retries):
            try:
                with self._lock, self._transaction(write) as tx:
                    return fn(tx)
            except CiGuardError:
                raise
            except Exception as exc:
                if self._retryable(exc) and attempt + 1 < self.retries:
                    time.sleep(min(0.5, 0.01 * 2**attempt))
                    continue
                mapped = self._translate_error(exc)
                if mapped is None:
                    raise
                raise mapped from None
        raise LedgerError(f"ledger {self.url}: gave up after {self.retries} attempts")  # pragma: no cover

    # --- migrations -------------------------------------------------------------------------------
    def _schema_version_ddl(self) -> str:
        return ("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TEXT NOT NULL)")

    def _apply_migrations(self, tx: Tx) -> int:
        tx.run(self._schema_version_ddl())
        # Every version not applied yet, in order -- not only those above the highest applied: versions
        # are pre-assigned to parallel work, so 0005 can be released after 0008 and must still run.
        applied = {int(r[0]) for r in tx.all("SELECT version FROM schema_version")}
        latest = max(applied, default=0)
        for migration in migrations.load(self.backend):
            if migration.version in applied:
                continue
            for statement in migration.statements:
                tx.run(statement)
            tx.run("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                   (migration.version, migration.name, self._ts(datetime.now(UTC))))
            latest = max(latest, migration.version)
        return latest

    # --- budgets ----------------------------------------------------------------------------------
    def budget_status(
        self, budgets: Sequence[Budget], ctx: RunContext, now: datetime
    ) -> list[BudgetStatus]:
        specs = [budget_spec(b) for b in budgets]

        def read(tx: Tx) -> list[BudgetStatus]:
            out = []
            for spec in specs:
                status = empty_status(spec, ctx.scope_key(spec.scope), now)
                if status.scope_key is not None:
                    spent, reserved = self._bucket(tx, spec.name, status.scope_key, status.period_start, now)
                    status.spent_usd, status.reserved_usd = from_micros(spent), from_micros(reserved)
                out.append(status)
            return out

        return self._op(read, write=False)

    def _bucket(self, tx: Tx, budget: str, scope_key: str, start: datetime | None,
                now: datetime) -> tuple[int, int]:
        """(spent, outstanding reservations) of one bucket, in micro-dollars; spent includes open runs."""
        key = (budget, scope_key, self._ts(start))
        row = tx.one(_BUCKET, (*key, self._ts(now), *key))
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def bucket_rows(self, budget: str, period_start: datetime, now: datetime) -> list[dict[str, Any]]:
        """Every scope key seen for ``budget`` in the period starting at ``period_start`` (for reports)."""
        def read(tx: Tx) -> list[dict[str, Any]]:
            start = self._ts(period_start)
            rows = tx.all(_BUCKET_ROWS, (self._ts(now), budget, start, budget, start))
            return [{"scope_key": scope_key, "spent_usd": from_micros(spent), "reserved_usd": from_micros(held),
                     "calls": int(calls), "runs": int(runs)} for scope_key, spent, calls, runs, held in rows]

        return self._op(read, write=False)

    def reserve(
        self, run_id: str, keys: Sequence[BudgetKey], amount_usd: Decimal, ttl_s: int,
        now: datetime, clamp: bool = False,
    ) -> Reservation:
        ordered, requested, expires = self._reservation_args(keys, amount_usd, ttl_s, now)
        if not ordered:
            return Reservation(run_id, from_micros(requested), [], expires)
        amount = self._op(lambda tx: self._reserve_in(tx, run_id, ordered, requested, expires, now, clamp))
        if isinstance(amount, BudgetExceededError):
            raise amount
        return Reservation(run_id, from_micros(amount), list(ordered), expires)

    def reserve_and_start(
        self, run_id: str, keys: Sequence[BudgetKey], amount_usd: Decimal, ttl_s: int, now: datetime,
        run_for: Callable[[Decimal], RunRecord], clamp: bool = False, owner: RunOwner | None = None,
    ) -> Reservation:
        """:meth:`reserve`, then :meth:`start_run` of ``run_for(reserved amount)`` and the run's owner, in
        one transaction: one commit instead of three, the rollup rows locked once per launch.

        ``run_for`` may be called more than once (a retried transaction) and must not have side effects.
        When the budget does not fit, nothing is started and :class:`BudgetExceededError` is raised (the
        expired holds settled on the way are committed, as by :meth:`reserve`).
        """
        ordered, requested, expires = self._reservation_args(keys, amount_usd, ttl_s, now)

        def write(tx: Tx) -> int | BudgetExceededError:
            amount = self._reserve_in(tx, run_id, ordered, requested, expires, now, clamp) if ordered else requested
            if not isinstance(amount, BudgetExceededError):
                self._start_in(tx, run_for(from_micros(amount)), ordered, datetime.now(UTC), owner)
            return amount

        amount = self._op(write)
        if isinstance(amount, BudgetExceededError):
            raise amount
        return Reservation(run_id, from_micros(amount), list(ordered), expires)

    def _reservation_args(self, keys: Sequence[BudgetKey], amount_usd: Decimal, ttl_s: int,
                          now: datetime) -> tuple[list[BudgetKey], int, datetime]:
        """(keys in lock order, micro-dollars asked for, expiry) of a reservation; a negative amount is an error."""
        requested = to_micros(amount_usd)
        if requested < 0:
            raise InvalidInputError(f"cannot reserve a negative amount ({amount_usd})")
        return sorted(keys, key=_key_order), requested, as_utc(now) + timedelta(seconds=ttl_s)

    def _reserve_in(self, tx: Tx, run_id: str, ordered: Sequence[BudgetKey], requested: int, expires: datetime,
                    now: datetime, clamp: bool) -> int | BudgetExceededError:
        """Hold the micro-dollars granted on every key (``ordered``: lock order); the error when they do not fit."""
        rooms = [self._room(tx, run_id, key, now) for key in ordered]
        amount = requested
        tightest = min(range(len(ordered)), key=lambda i: rooms[i][0])
        if amount > rooms[tightest][0]:
            if not clamp or rooms[tightest][0] <= 0:
                # returned, not raised: the expired holds settled on the way are committed all the same
                key, (_, spent, reserved) = ordered[tightest], rooms[tightest]
                return BudgetExceededError(f"{key.budget}[{key.scope_key}]", key.limit_usd,
                                           from_micros(spent), from_micros(reserved), from_micros(requested))
            amount = rooms[tightest][0]
        for key in ordered:
            self._hold(tx, run_id, key, amount, expires, now)
        return amount

    def _room(self, tx: Tx, run_id: str, key: BudgetKey, now: datetime) -> tuple[int, int, int]:
        """Lock the key's rollup row; return (room left, spent, outstanding of *other* runs)."""
        start = self._ts(key.period_start)
        bucket = (key.budget, key.scope_key, start)
        self._ensure_rollup(tx, key, now)
        row = tx.one("SELECT spent_micros FROM budget_rollups WHERE budget = ? AND scope_key = ?"
                     " AND period_start = ?" + self.lock_suffix, bucket)
        spent = int(row[0]) if row else 0
        spent += self._expire(tx, key, now)
        # every open reservation left is unexpired: its escrow is spent, its unspent rest is held
        row = tx.one("SELECT COALESCE(SUM(escrow_micros), 0), COALESCE(SUM(CASE WHEN run_id <> ?"
                     " AND amount_micros > used_micros THEN amount_micros - used_micros ELSE 0 END), 0)"
                     " FROM reservations WHERE budget = ? AND scope_key = ? AND period_start = ?"
                     " AND settled = {false}", (run_id, *bucket))
        escrow, reserved = (int(row[0]), int(row[1])) if row else (0, 0)
        spent += escrow
        return to_micros(key.limit_usd) - spent - reserved, spent, reserved

    def _expire(self, tx: Tx, key: BudgetKey, now: datetime) -> int:
        """Settle the bucket's expired reservations (their runs died without settling): what they had
        spent moves from escrow into the rollup, once; they hold nothing more. The caller holds the
        rollup row's lock. Returns the micro-dollars moved."""
        bucket = (key.budget, key.scope_key, self._ts(key.period_start))
        expired = tx.all("SELECT run_id, escrow_micros, escrow_calls FROM reservations WHERE budget = ?"
                         " AND scope_key = ? AND period_start = ? AND settled = {false} AND expires_at <= ?"
                         + self.lock_suffix, (*bucket, self._ts(now)))
        if not expired:
            return 0
        tx.many("UPDATE reservations SET settled = {true}, escrow_micros = 0, escrow_calls = 0"
                " WHERE run_id = ? AND budget = ? AND scope_key = ? AND period_start = ?",
                [(r[0], *bucket) for r in expired])
        micros, calls = sum(int(r[1]) for r in expired), sum(int(r[2]) for r in expired)
        if micros or calls:
            self._add_to_rollup(tx, "", *bucket, micros, calls, 0, now)
        return micros

    def _ensure_rollup(self, tx: Tx, key: BudgetKey, now: datetime) -> None:
        tx.run("INSERT INTO budget_rollups (budget, scope_key, period_start, period_end, limit_micros,"
               " spent_micros, calls, runs, updated_at) VALUES (?, ?, ?, ?, ?, 0, 0, 0, ?)"
               " ON CONFLICT (budget, scope_key, period_start) DO UPDATE SET limit_micros = excluded.limit_micros",
               (key.budget, key.scope_key, self._ts(key.period_start), self._ts(key.period_end),
                to_micros(key.limit_usd), self._ts(now)))

    def _hold(self, tx: Tx, run_id: str, key: BudgetKey, amount: int, expires: datetime,
              now: datetime) -> None:
        tx.run("INSERT INTO reservations (run_id, budget, scope_key, period_start, amount_micros, used_micros,"
               " expires_at, settled, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, {false}, ?)"
               " ON CONFLICT (run_id, budget, scope_key, period_start) DO UPDATE SET"
               " amount_micros = excluded.amount_micros, expires_at = excluded.expires_at, settled = {false},"
               # a settled row's spend is in the rollup already: reopened, it starts from nothing
               " used_micros = CASE WHEN reservations.settled = {true} THEN 0 ELSE reservations.used_micros END",
               (run_id, key.budget, key.scope_key, self._ts(key.period_start), amount,
                self._ts(expires), self._ts(now)))

    def settle(self, run_id: str) -> None:
        """Close the run's reservations: their escrow becomes spent in the rollups, exactly once.

        Idempotent: only rows still open are moved, and they flip to settled in the same transaction.
        """
        now = datetime.now(UTC)

        def write(tx: Tx) -> None:
            open_keys = tx.all("SELECT budget, scope_key, period_start FROM reservations WHERE run_id = ?"
                               " AND settled = {false}", (run_id,))
            if not open_keys:
                return
            # the rollup rows first, in the order `reserve` locks them: no lock cycle with a reservation
            for budget, scope_key, start in sorted(open_keys, key=self._row_order):
                tx.one("SELECT spent_micros FROM budget_rollups WHERE budget = ? AND scope_key = ?"
                       " AND period_start = ?" + self.lock_suffix, (budget, scope_key, start))
            rows = tx.all("SELECT budget, scope_key, period_start, escrow_micros, escrow_calls FROM reservations"
                          " WHERE run_id = ? AND settled = {false}" + self.lock_suffix, (run_id,))
            tx.run("UPDATE reservations SET settled = {true}, escrow_micros = 0, escrow_calls = 0"
                   " WHERE run_id = ? AND settled = {false}", (run_id,))
            for budget, scope_key, start, micros, calls in sorted(rows, key=self._row_order):
                if micros or calls:
                    self._add_to_rollup(tx, run_id, budget, scope_key, start, int(micros), int(calls), 0, now)

        self._op(write)

    def _row_order(self, row: Sequence[Any]) -> tuple[str, str, datetime | None]:
        return row[0], row[1], self._dt(row[2])

    # --- runs and calls ---------------------------------------------------------------------------
    def start_run(self, run: RunRecord, keys: Sequence[BudgetKey] = (), owner: RunOwner | None = None) -> None:
        """Insert the run with zero totals: a run's totals are always the sum of its recorded calls."""
        ordered = sorted(keys, key=_key_order)
        now = datetime.now(UTC)
        self._op(lambda tx: self._start_in(tx, run, ordered, now, owner))

    def _start_in(self, tx: Tx, run: RunRecord, ordered: Sequence[BudgetKey], now: datetime,
                  owner: RunOwner | None) -> None:
        inserted = tx.run(f"INSERT INTO runs ({', '.join(RUN_COLS)}) VALUES "
                          f"({', '.join('?' * len(RUN_COLS))}) ON CONFLICT (run_id) DO NOTHING",
                          self._run_row(run))
        if not inserted:
            raise LedgerError(f"run {run.run_id!r} is already in the ledger")
        for key in ordered:
            tx.run("INSERT INTO run_budget_keys (run_id, budget, scope_key, period_start, period_end)"
                   " VALUES (?, ?, ?, ?, ?)", (run.run_id, key.budget, key.scope_key,
                                               self._ts(key.period_start), self._ts(key.period_end)))
            self._ensure_rollup(tx, key, now)
            self._add_to_rollup(tx, run.run_id, key.budget, key.scope_key, self._ts(key.period_start),
                                0, 0, 1, now)
        if owner is not None:
            self._set_owner(tx, run.run_id, owner)

    def record_call(self, call: CallRecord) -> None:
        self.record_calls([call])

    def record_calls(self, calls: Sequence[CallRecord]) -> None:
        """Several calls in one transaction (one commit, one fsync): all are written or none.

        The batch is one multi-row INSERT per 200 calls, then one update of each run's totals and
        of its escrow: a writer that drains 50 queued calls pays for ~3 statements, not 150.
        """
        now = datetime.now(UTC)

        def write(tx: Tx) -> None:
            inserted = self._insert_calls(tx, calls)
            by_run: dict[str, list[tuple[CallRecord, int]]] = {}
            for call, micros in inserted:
                by_run.setdefault(call.run_id, []).append((call, micros))
            for run_id, written in by_run.items():
                self._add_calls_to_run(tx, run_id, written, now)

        self._op(write)

    def _insert_calls(self, tx: Tx, calls: Sequence[CallRecord]) -> list[tuple[CallRecord, int]]:
        """Insert the calls; return those actually written with their cost in micro-dollars (a call
        written twice -- a retried write, a replayed spill -- is counted once)."""
        inserted: list[tuple[CallRecord, int]] = []
        for i in range(0, len(calls), _INSERT_CHUNK):
            chunk = calls[i:i + _INSERT_CHUNK]
            priced = [(c, to_micros(c.cost_usd)) for c in chunk]
            params = [v for c, m in priced for v in self._call_row(c, m)]
            written = {(r[0], int(r[1])) for r in tx.all(_insert_calls_sql(len(chunk)), params)}
            for call, micros in priced:
                if (call.run_id, call.seq) in written:
                    written.discard((call.run_id, call.seq))  # a seq twice in one batch: the first was written
                    inserted.append((call, micros))
        return inserted

    def _add_calls_to_run(self, tx: Tx, run_id: str, written: list[tuple[CallRecord, int]], now: datetime) -> None:
        """Add freshly written calls to their run's totals, and to its escrow (or, for a key without an
        open reservation, to the budget rollup itself)."""
        micros = sum(m for _, m in written)
        usage = [sum(col) for col in zip(*(astuple(c.usage) for c, _ in written), strict=True)]
        if not tx.run(_ADD_TO_RUN, (sum(int(c.is_turn) for c, _ in written), sum(c.tool_calls for c, _ in written),
                                    micros, *usage, sum(c.web_searches for c, _ in written),
                                    sum(to_micros(c.context_saved_usd) for c, _ in written), run_id)):
            raise LedgerError(f"run {run_id!r} is not in the ledger; start_run must come first")
        # The run's own rows only: no other run ever waits on them. Escrow only on the keys the run
        # charges (a hold on another key counts the use, as before, but is not spend of that budget).
        escrowed = tx.all(
            f"UPDATE reservations SET used_micros = used_micros + ?, escrow_micros = escrow_micros + {_IF_CHARGED},"
            f" escrow_calls = escrow_calls + {_IF_CHARGED} WHERE run_id = ? AND settled = {{false}}"
            " RETURNING budget, scope_key, period_start", (micros, micros, len(written), run_id))
        # both tables store the period start alike (TIMESTAMPTZ; fixed-format text on SQLite): compare as read
        held = {tuple(r) for r in escrowed}
        for budget, scope_key, start in self._keys_of(tx, run_id):
            if (budget, scope_key, start) not in held:
                self._add_to_rollup(tx, run_id, budget, scope_key, start, micros, len(written), 0, now)

    def _keys_of(self, tx: Tx, run_id: str) -> list[tuple[Any, ...]]:
        """The run's budget buckets, sorted as every writer locks them (no deadlocks on PostgreSQL)."""
        keys = self._run_keys.get(run_id)
        if keys is None:
            rows = tx.all("SELECT budget, scope_key, period_start FROM run_budget_keys WHERE run_id = ?", (run_id,))
            keys = sorted(rows, key=lambda k: (k[0], k[1], self._dt(k[2])))
            if len(self._run_keys) >= 1024:  # a long-lived store (a reporting service): stay small
                self._run_keys.clear()
            self._run_keys[run_id] = keys
        return keys

    def _add_to_rollup(self, tx: Tx, run_id: str, budget: str, scope_key: str, start: Any, micros: int,
                       calls: int, runs: int, now: datetime) -> None:
        tx.run("UPDATE budget_rollups SET spent_micros = spent_micros + ?, calls = calls + ?,"
               " runs = runs + ?, updated_at = ? WHERE budget = ? AND scope_key = ? AND period_start = ?",
               (micros, calls, runs, self._ts(now), budget, scope_key, start))

    def finish_run(
        self, run_id: str, status: str, stop_reason: str | None, ended_at: datetime,
        agent_exit_code: int | None = None, session_id: str | None = None,
    ) -> None:
        def write(tx: Tx) -> None:
            if not tx.run("UPDATE runs SET status = ?, stop_reason = ?, ended_at = ?,"
                          " agent_exit_code = COALESCE(?, agent_exit_code), session_id = COALESCE(?, session_id)"
                          " WHERE run_id = ?",
                          (status, stop_reason, self._ts(ended_at), agent_exit_code, session_id, run_id)):
                raise LedgerError(f"run {run_id!r} is not in the ledger")
            # after the UPDATE, which holds the run's row: a call written concurrently either is
            # in the rollup's read or clears the rollup after this commits (it updates that row)
            self._roll_up(tx, [run_id])

        self._op(write)

    def set_run_owner(self, run_id: str, pid: int, started: str | None, host: str) -> None:
        self._op(lambda tx: self._set_owner(tx, run_id, (pid, started, host)))

    def _set_owner(self, tx: Tx, run_id: str, owner: RunOwner) -> None:
        tx.run("UPDATE runs SET owner_pid = ?, owner_started = ?, owner_host = ? WHERE run_id = ?", (*owner, run_id))

    def running_runs_owned_on(self, host: str) -> list[tuple[str, int, str | None]]:
        rows = self._op(lambda tx: tx.all("SELECT run_id, owner_pid, owner_started FROM runs"
                                          " WHERE status = 'running' AND owner_host = ?", (host,)), write=False)
        return [(str(r[0]), int(r[1]), None if r[2] is None else str(r[2])) for r in rows if r[1] is not None]

    def set_outcome(self, run_id: str, outcome: str) -> None:
        def write(tx: Tx) -> None:
            if not tx.run("UPDATE runs SET outcome = ? WHERE run_id = ?", (outcome, run_id)):
                raise InvalidInputError(f"no run {run_id!r} in the ledger {self.url}")

        self._op(write)

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self._op(lambda tx: tx.one(f"SELECT {', '.join(RUN_COLS)} FROM runs WHERE run_id = ?",
                                         (run_id,)), write=False)
        return self._run_from(row) if row else None

    def list_runs(
        self, *, repo: str | None = None, pr: int | None = None, since: datetime | None = None,
        status: str | None = None, limit: int = 50,
    ) -> list[RunRecord]:
        where, params = self._filters(repo=repo, pr=pr, since=since, status=status)
        sql = (f"SELECT {', '.join(RUN_COLS)} FROM runs{where} ORDER BY started_at DESC, run_id DESC"
               " LIMIT ?")
        rows = self._op(lambda tx: tx.all(sql, (*params, max(1, limit))), write=False)
        return [self._run_from(r) for r in rows]

    def list_calls(
        self, run_id: str | None = None, *, limit: int = 1000, repo: str | None = None,
        pr: int | None = None, since: datetime | None = None, status: str | None = None,
    ) -> list[CallRecord]:
        cols = ", ".join(f"c.{c}" for c in CALL_COLS)
        where, params = self._filters(prefix="c.", run_id=run_id, since=since, status=status)
        join = ""
        if repo is not None or pr is not None:
            run_where, run_params = self._filters(prefix="r.", repo=repo, pr=pr)
            join = " JOIN runs r ON r.run_id = c.run_id"
            where = where + (" AND " if where else " WHERE ") + run_where.removeprefix(" WHERE ")
            params += run_params
        order = "c.seq" if run_id is not None else "c.started_at DESC, c.run_id, c.seq DESC"
        sql = f"SELECT {cols} FROM calls c{join}{where} ORDER BY {order} LIMIT ?"
        rows = self._op(lambda tx: tx.all(sql, (*params, max(1, limit))), write=False)
        return [self._call_from(r) for r in rows]

    def export_calls(self, start: datetime, end: datetime,
                     page: int = EXPORT_PAGE) -> Iterator[tuple[CallRecord, RunRecord]]:
        """Every call started in ``[start, end)`` with its run, oldest first, read in pages.

        Keyset pages (``(started_at, run_id, seq)`` after the last row seen), each in its own short
        read transaction: a month of a busy organisation never sits in memory at once, and no
        transaction stays open while the caller writes its file.
        """
        call_cols = ", ".join(f"c.{c}" for c in CALL_COLS)
        run_cols = ", ".join(f"r.{c}" for c in EXPORT_RUN_COLS)
        base = (f"SELECT {call_cols}, {run_cols} FROM calls c JOIN runs r ON r.run_id = c.run_id"
                " WHERE c.started_at >= ? AND c.started_at < ?")
        order = " ORDER BY c.started_at, c.run_id, c.seq LIMIT ?"
        after: tuple[Any, ...] | None = None
        width = len(CALL_COLS)
        while True:
            if after is None:
                sql, params = base + order, (self._ts(start), self._ts(end), page)
            else:
                sql = base + " AND (c.started_at, c.run_id, c.seq) > (?, ?, ?)" + order
                params = (self._ts(start), self._ts(end), *after, page)
            rows = self._op(lambda tx, sql=sql, params=params: tx.all(sql, params), write=False)
            for row in rows:
                yield self._call_from(row[:width]), self._run_from(row[width:], EXPORT_RUN_COLS)
            if len(rows) < page:
                return
            last = rows[-1]
            after = (last[CALL_COLS.index("started_at")], last[0], last[1])

    def export_rows(self, start: datetime, end: datetime,
                    page: int = EXPORT_PAGE) -> Iterator[list[tuple[Any, ...]]]:
        """:meth:`export_calls` as pages of plain tuples (:data:`EXPORT_ROW_COLS`), no record objects.

        What the FOCUS export reads: a month of a million calls is formatted in bulk from these
        instead of building two records per call. Times are aware UTC datetimes and money integer
        micro-dollars, on both backends; the same keyset pages as :meth:`export_calls`.
        """
        cols = ", ".join(f"c.{c}" for c in EXPORT_CALL_COLS) + ", " + ", ".join(f"r.{c}" for c in EXPORT_ROW_RUN_COLS)
        base = (f"SELECT {cols} FROM calls c JOIN runs r ON r.run_id = c.run_id"
                " WHERE c.started_at >= ? AND c.started_at < ?")
        order = " ORDER BY c.started_at, c.run_id, c.seq LIMIT ?"
        after: tuple[Any, ...] | None = None
        dt, started, ended = self._dt, EXPORT_CALL_COLS.index("started_at"), EXPORT_CALL_COLS.index("ended_at")
        while True:
            if after is None:
                sql, params = base + order, (self._ts(start), self._ts(end), page)
            else:
                sql = base + " AND (c.started_at, c.run_id, c.seq) > (?, ?, ?)" + order
                params = (self._ts(start), self._ts(end), *after, page)
            rows = self._op(lambda tx, sql=sql, params=params: tx.all(sql, params), write=False)
            if rows:
                last = rows[-1]
                after = (last[started], last[0], last[1])
                yield [(*r[:started], dt(r[started]), dt(r[ended]), *r[ended + 1:]) for r in rows]
            if len(rows) < page:
                return

    @contextmanager
    def export_snapshot(self) -> Iterator[ExportSnapshot]:
        """One read snapshot for a bulk export (``ci_guard.report.focus_sql``): every read through
        the :class:`ExportSnapshot` sees the same data."""
        try:
            with self._lock, self._snapshot() as tx:
                yield ExportSnapshot(self, tx)
        except CiGuardError:
            raise
        except Exception as exc:
            mapped = self._translate_error(exc)
            if mapped is None:
                raise
            raise mapped from None

    def _encoding(self, tx: Tx) -> str:
        return "utf-8"

    def _snapshot(self) -> AbstractContextManager[Tx]:
        """A read transaction whose statements all see the same data."""
        return self._transaction(False)

    def _stream(self, tx: Tx, sql: str, params: Sequence[Any], page: int) -> Iterator[list[tuple[Any, ...]]]:
        tx.cursor.execute(self._q(sql), tuple(params))
        while rows := tx.cursor.fetchmany(page):
            yield rows

    def runs_between(self, start: datetime, end: datetime) -> list[RunRecord]:
        """Every run started in ``[start, end)``, oldest first (what `what-if` replays, in order)."""
        sql = (f"SELECT {', '.join(RUN_COLS)} FROM runs WHERE started_at >= ? AND started_at < ?"
               " ORDER BY started_at, run_id")
        rows = self._op(lambda tx: tx.all(sql, (self._ts(start), self._ts(end))), write=False)
        return [self._run_from(r) for r in rows]

    def replay_calls(self, start: datetime, end: datetime,
                     tokens: bool = True) -> dict[str, list[tuple[Any, ...]]]:
        """The calls of the allowed runs started in ``[start, end)``, as :data:`REPLAY_CALL_COLS` tuples
        grouped by run and in ``seq`` order: one read, no per-call objects (a month can hold a
        million calls; `what-if` walks them as plain tuples). Without ``tokens`` the tuples stop
        before the columns only re-pricing reads (model, tier, tokens), which halves the read."""
        cols = ", ".join(f"c.{c}" for c in _replay_cols(tokens))
        sql = (f"SELECT {cols} FROM calls c JOIN runs r ON r.run_id = c.run_id"
               " WHERE r.started_at >= ? AND r.started_at < ? AND r.decision = 'allow'")
        rows = self._op(lambda tx: tx.all(sql, (self._ts(start), self._ts(end))), write=False)
        return _grouped(rows)

    def replay_calls_of(self, run_ids: Sequence[str], tokens: bool = True) -> dict[str, list[tuple[Any, ...]]]:
        """Like :meth:`replay_calls` for the given runs only (read by primary key, 500 runs a query)."""
        cols = ", ".join(_replay_cols(tokens))
        rows: list[tuple[Any, ...]] = []
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            sql = f"SELECT {cols} FROM calls WHERE run_id IN ({', '.join('?' * len(chunk))})"
            rows += self._op(lambda tx, sql=sql, chunk=chunk: tx.all(sql, chunk), write=False)
        return _grouped(rows)

    def report(self, start: datetime, end: datetime, group_by: str = "repo") -> list[dict[str, Any]]:
        """Spend per ``group_by`` for runs started in ``[start, end)``, from run totals (no call scan)."""
        column = REPORT_GROUPS.get(group_by)
        if column is None:
            raise InvalidInputError(f"cannot group by {group_by!r}; expected one of {', '.join(REPORT_GROUPS)}")
        sql = (f"SELECT {column}, COUNT(*), SUM(turns), SUM(cost_micros), SUM(input_tokens),"
               " SUM(cache_read_tokens), SUM(output_tokens) FROM runs WHERE started_at >= ? AND started_at < ?"
               f" GROUP BY {column} ORDER BY SUM(cost_micros) DESC")
        rows = self._op(lambda tx: tx.all(sql, (self._ts(start), self._ts(end))), write=False)
        return [{group_by: r[0], "runs": int(r[1]), "turns": int(r[2] or 0), "cost_usd": from_micros(r[3]),
                 "input_tokens": int(r[4] or 0), "cache_read_tokens": int(r[5] or 0),
                 "output_tokens": int(r[6] or 0)} for r in rows]

    def _filters(self, prefix: str = "", **values: Any) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for name, value in values.items():
            if value is None:
                continue
            if name == "since":
                clauses.append(f"{prefix}started_at >= ?")
                params.append(self._ts(value))
            else:
                clauses.append(f"{prefix}{name} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    # --- row mapping ------------------------------------------------------------------------------
    def _run_row(self, run: RunRecord) -> tuple[Any, ...]:
        return (run.run_id, self._ts(run.started_at), self._ts(run.ended_at), run.decision, run.status,
                run.org, run.team, run.repo, run.user, run.workflow, run.agent, run.environment,
                run.trigger, run.pr, run.branch, run.cohort, run.platform, run.rule, run.reason, run.model,
                json.dumps(run.limits, sort_keys=True, default=str), run.stop_reason, run.outcome,
                run.agent_exit_code, run.session_id, self._bool(run.enforced), run.run_url, 0, 0, 0,
                *(0 for _ in TOKEN_COLS), 0, 0, inputs.dumps(run.inputs))

    def _run_from(self, row: Sequence[Any], cols: Sequence[str] = RUN_COLS) -> RunRecord:
        # by position (what-if reads every run of a month through here): no dict per row
        at = _positions(tuple(cols))
        tokens = at["input_tokens"]
        inputs_at = at.get("decision_inputs_json")
        return RunRecord(
            run_id=row[at["run_id"]], started_at=self._dt(row[at["started_at"]]),  # type: ignore[arg-type]
            ended_at=self._dt(row[at["ended_at"]]), decision=row[at["decision"]], status=row[at["status"]],
            org=row[at["org"]], team=row[at["team"]], repo=row[at["repo"]], user=row[at["actor"]],
            workflow=row[at["workflow"]], agent=row[at["agent"]], environment=row[at["environment"]],
            trigger=row[at["trigger_name"]], pr=row[at["pr"]], branch=row[at["branch"]], cohort=row[at["cohort"]],
            platform=row[at["platform"]], rule=row[at["rule"]], reason=row[at["reason"]], model=row[at["model"]],
            limits=_limits(row[at["limits_json"]]), stop_reason=row[at["stop_reason"]], outcome=row[at["outcome"]],
            agent_exit_code=row[at["agent_exit_code"]], session_id=row[at["session_id"]],
            enforced=bool(row[at["enforced"]]), run_url=row[at["run_url"]],
            turns=int(row[at["turns"]]), tool_calls=int(row[at["tool_calls"]]),
            cost_usd=from_micros(row[at["cost_micros"]]),
            usage=Usage(*(int(v) for v in row[tokens:tokens + len(TOKEN_COLS)])),
            web_searches=int(row[at["web_searches"]]), context_saved_usd=from_micros(row[at["context_saved_micros"]]),
            inputs=_json_or_none(row[inputs_at]) if inputs_at is not None else None,
        )

    def _call_row(self, call: CallRecord, micros: int) -> tuple[Any, ...]:
        return (call.run_id, call.seq, self._ts(call.started_at), self._ts(call.ended_at), call.provider,
                call.endpoint, call.model_requested, call.model_served, *astuple(call.usage), micros,
                call.status, call.http_status, self._bool(call.stream), call.tool_calls, call.context_tokens,
                float(call.latency_ms), call.fingerprint, call.error, call.session_id, self._bool(call.is_turn),
                call.web_searches, call.service_tier, self._bool(call.estimated),
                json.dumps(call.context, sort_keys=True) if call.context else None, to_micros(call.context_saved_usd),
                call.inference_geo)

    def _call_from(self, row: Sequence[Any]) -> CallRecord:
        c = dict(zip(CALL_COLS, row, strict=True))
        return CallRecord(
            run_id=c["run_id"], seq=int(c["seq"]), started_at=self._dt(c["started_at"]),  # type: ignore[arg-type]
            ended_at=self._dt(c["ended_at"]), provider=c["provider"], endpoint=c["endpoint"],  # type: ignore[arg-type]
            model_requested=c["model_requested"], model_served=c["model_served"],
            usage=Usage(*(int(c[k]) for k in TOKEN_COLS)), cost_usd=from_micros(c["cost_micros"]),
            status=c["status"], http_status=c["http_status"], stream=bool(c["stream"]),
            tool_calls=int(c["tool_calls"]), context_tokens=int(c["context_tokens"]),
            latency_ms=float(c["latency_ms"]), fingerprint=c["fingerprint"], error=c["error"],
            session_id=c["session_id"], is_turn=bool(c["is_turn"]), web_searches=int(c["web_searches"]),
            service_tier=c["service_tier"], estimated=bool(c["estimated"]),
            context=json.loads(c["context_json"]) if c["context_json"] else None,
            context_saved_usd=from_micros(c["context_saved_micros"]), inference_geo=c["inference_geo"],
        )


@lru_cache(maxsize=8)
def _positions(cols: tuple[str, ...]) -> dict[str, int]:
    return {name: i for i, name in enumerate(cols)}


@lru_cache(maxsize=256)
def _limits_json(text: str) -> dict[str, Any]:
    return json.loads(text)


def _limits(text: str | None) -> dict[str, Any]:
    """A run's limits: the same few JSON texts repeat across a month's runs, so decode each once."""
    return dict(_limits_json(text or "{}"))  # a copy of the (flat) dict: callers may change theirs


@lru_cache(maxsize=512)
def _translate(sql: str, placeholder: str, true_sql: str, false_sql: str) -> str:
    """A statement in a backend's dialect (cached: the ledger thread sends the same few per call)."""
    sql = sql.replace("{false}", false_sql).replace("{true}", true_sql)
    return sql if placeholder == "?" else sql.replace("?", placeholder)


@lru_cache(maxsize=16)
def _insert_calls_sql(rows: int) -> str:
    """The multi-row INSERT of ``rows`` calls (built once per batch size: a writer sends the same few)."""
    row = "(" + ", ".join("?" * len(CALL_COLS)) + ")"
    return (f"INSERT INTO calls ({', '.join(CALL_COLS)}) VALUES {', '.join([row] * rows)}"
            " ON CONFLICT (run_id, seq) DO NOTHING RETURNING run_id, seq")


def _json_or_none(text: str | None) -> dict[str, Any] | None:
    """A stored JSON object, or None when absent or unreadable (a replay then approximates the run)."""
    if not text:
        return None
    import msgspec  # a dependency already (meter/providers/body.py); decodes these ~3x faster

    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:  # what it refuses (lone surrogate escapes, say), json decides
        try:
            value = json.loads(text)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _replay_cols(tokens: bool) -> tuple[str, ...]:
    return REPLAY_CALL_COLS if tokens else REPLAY_CALL_COLS[:REPLAY_CALL_COLS.index("model_served")]


def _grouped(rows: Sequence[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
    for calls in grouped.values():
        calls.sort(key=_seq)
    return grouped


def _seq(row: tuple[Any, ...]) -> int:
    return int(row[1])


def _key_order(key: BudgetKey) -> tuple[str, str, datetime]:
    return key.budget, key.scope_key, as_utc(key.period_start)


