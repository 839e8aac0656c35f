"""Reads for FinOps reports and the dashboard, and bulk writes of history (pilot months, backfills).

Reports never build one Python object per call: the runs carry their totals, and a finished run
its *rollup* (schema version 14: calls, their cost and model, the first, middle and last call's
context), written when the run finishes. A report of a month reads the runs table; only the runs
without a rollup (still open, written before version 14, or with a call recorded after the rollup)
have their calls aggregated by the database, by primary key. A month of a million calls is some
tens of thousands of runs, which is what reaches Python (:mod:`ci_guard.report.finops` groups them).

Mixed into :class:`ci_guard.ledger.sqlstore.SqlStore`, so both backends run the same SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ci_guard.errors import InvalidInputError

if TYPE_CHECKING:
    from ci_guard.ledger.records import CallRecord, RunRecord
    from ci_guard.ledger.sqlstore import Tx

TOKEN_CLASSES = ("input_tokens", "cache_write_tokens", "cache_write_1h_tokens", "cache_read_tokens",
                 "output_tokens", "reasoning_tokens")
# report dimension -> runs column
DIMENSIONS = {"org": "org", "team": "team", "repo": "repo", "user": "actor", "workflow": "workflow",
              "agent": "agent", "model": "model", "environment": "environment", "cohort": "cohort",
              "trigger": "trigger_name", "status": "status"}
# the order _facts_from reads them in
_FACT_COLS = ("run_id", "started_at", "status", "stop_reason", "org", "team", "repo", "actor", "workflow",
              "agent", "model", "environment", "cohort", "trigger_name", "pr", "enforced", "turns", "cost_micros",
              *TOKEN_CLASSES, "platform", "run_url", "context_saved_micros", "outcome", "tests_fixed")


_MODEL = "COALESCE(c.model_served, c.model_requested, '(unknown)')"
# schema version 14: what period_runs reads of a run's rollup, after _FACT_COLS (see _apply_rollup)
_ROLLUP_COLS = ("r.rollup_calls, r.rollup_micros, r.rollup_model, r.rollup_ctx_first, r.rollup_ctx_mid,"
                " r.rollup_ctx_last")


@dataclass(slots=True)
class RunFacts:
    """One run of a period as reports see it (no per-call rows)."""

    run_id: str
    started_at: datetime
    status: str
    stop_reason: str | None
    dims: dict[str, str | None]  # report dimension -> value ("model" is the decided model)
    pr: int | None
    enforced: bool
    turns: int
    cost_micros: int
    tokens: tuple[int, ...]  # TOKEN_CLASSES
    platform: str | None
    run_url: str | None
    context_saved_micros: int  # what context policies saved (not spent, not in cost)
    outcome: str | None  # the run's own outcome, else its PR's
    tests_fixed: int
    calls: int = 0
    models: dict[str, list[int]] = field(default_factory=dict)  # served model -> [calls, cost_micros]
    context: tuple[int, int, int] | None = None  # context tokens of the first, middle and last call


def _apply_rollup(fact: RunFacts, rollup: Sequence[Any]) -> None:
    """Set a run's call aggregates from (calls, micros, model or None, context first, middle, last)."""
    calls, micros, model, first, middle, last = rollup
    fact.calls = int(calls)
    if not calls:
        return
    if model is not None:  # else several models: split by _split_models
        fact.models[model] = [int(calls), int(micros or 0)]
    fact.context = (int(first), int(middle if middle is not None else first), int(last))


class AnalyticsMixin:
    """Period reads and history writes shared by the SQLite and PostgreSQL stores."""

    # provided by SqlStore
    _op: Any
    _ts: Any
    _dt: Any
    _bool: Any
    _run_row: Any
    _call_row: Any
    url: str

    def period_runs(self, start: datetime, end: datetime, *, with_calls: bool = True) -> list[RunFacts]:
        """Every run started in ``[start, end)`` with its totals, PR outcome and (optionally) call aggregates."""
        def read(tx: Tx) -> list[RunFacts]:
            cols = ", ".join(f"r.{c}" for c in _FACT_COLS[:-2])
            rows = tx.all(f"SELECT {cols}, COALESCE(r.outcome, p.outcome), r.tests_fixed, {_ROLLUP_COLS} FROM runs r"
                          " LEFT JOIN pr_outcomes p ON p.repo = r.repo AND p.pr = r.pr"
                          " WHERE r.started_at >= ? AND r.started_at < ?", (self._ts(start), self._ts(end)))
            facts = {}
            missing: list[str] = []  # runs without a (current) rollup: their calls are aggregated here
            width = len(_FACT_COLS)
            for row in rows:
                fact = facts[row[0]] = self._facts_from(row)
                if not with_calls:
                    continue
                if row[width] is None:
                    missing.append(row[0])
                else:
                    _apply_rollup(fact, row[width:])
            if missing:
                self._prepare_scan(tx)
                if len(missing) * 5 > len(facts):
                    # most runs have no rollup (a ledger from before version 14): one pass over the period
                    aggregates = self._call_aggregates(tx, "r.started_at >= ? AND r.started_at < ?",
                                                       (self._ts(start), self._ts(end)))
                else:
                    aggregates = []
                    for i in range(0, len(missing), 500):
                        chunk = missing[i:i + 500]
                        aggregates += self._call_aggregates(tx, f"r.run_id IN ({', '.join('?' * len(chunk))})", chunk)
                wanted = set(missing)
                for agg in aggregates:
                    if agg[0] in wanted:
                        _apply_rollup(facts[agg[0]], agg[1:])
            if with_calls:  # runs that used several models (few): split per model
                self._split_models(tx, facts, [r for r, f in facts.items() if f.calls and not f.models])
            return list(facts.values())

        return self._op(read, write=False)

    def _call_aggregates(self, tx: Tx, runs_where: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """(run_id, *rollup) per run with calls among ``runs r WHERE runs_where``: what a rollup holds.

        The first and the last call are found by index seeks on the calls' primary key (run_id, seq),
        the middle one by position, so no 1M-row sort or scan of the calls is needed.
        """
        return tx.all(
            "WITH b AS MATERIALIZED (SELECT r.run_id,"
            " (SELECT x.seq FROM calls x WHERE x.run_id = r.run_id ORDER BY x.seq LIMIT 1) AS lo,"
            " (SELECT x.seq FROM calls x WHERE x.run_id = r.run_id ORDER BY x.seq DESC LIMIT 1) AS hi"
            f" FROM runs r WHERE {runs_where}),"
            f" a AS MATERIALIZED (SELECT c.run_id, COUNT(*) AS n, SUM(c.cost_micros) AS micros, MIN({_MODEL}) AS low,"
            f" MAX({_MODEL}) AS high FROM calls c WHERE c.run_id IN (SELECT run_id FROM b WHERE lo IS NOT NULL)"
            " GROUP BY c.run_id)"
            " SELECT b.run_id, a.n, a.micros, CASE WHEN a.low = a.high THEN a.low END,"
            " f.context_tokens, COALESCE(m.context_tokens, f.context_tokens), l.context_tokens FROM b"
            " JOIN a ON a.run_id = b.run_id"
            " JOIN calls f ON f.run_id = b.run_id AND f.seq = b.lo"
            " LEFT JOIN calls m ON m.run_id = b.run_id AND m.seq = (b.lo + b.hi) / 2"
            " JOIN calls l ON l.run_id = b.run_id AND l.seq = b.hi", params)

    def _split_models(self, tx: Tx, facts: dict[str, RunFacts], run_ids: list[str]) -> None:
        """Calls and cost per served model of runs that used several (few: a second, small query)."""
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            for run_id, model, calls, micros in tx.all(
                    f"SELECT c.run_id, {_MODEL}, COUNT(*), SUM(c.cost_micros) FROM calls c"
                    f" WHERE c.run_id IN ({', '.join('?' * len(chunk))}) GROUP BY c.run_id, {_MODEL}", chunk):
                facts[run_id].models[model] = [int(calls), int(micros or 0)]

    def _roll_up(self, tx: Tx, run_ids: Sequence[str]) -> None:
        """Write the rollup of ``run_ids`` from their calls (in the caller's write transaction)."""
        ids = list(dict.fromkeys(run_ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            got = {row[0]: row[1:] for row in self._call_aggregates(
                tx, f"r.run_id IN ({', '.join('?' * len(chunk))})", chunk)}
            tx.many("UPDATE runs SET rollup_calls = ?, rollup_micros = ?, rollup_model = ?, rollup_ctx_first = ?,"
                    " rollup_ctx_mid = ?, rollup_ctx_last = ? WHERE run_id = ?",
                    [(*(got.get(r) or (0, 0, None, None, None, None)), r) for r in chunk])

    def _prepare_scan(self, tx: Tx) -> None:
        """Backend tuning before reading a period's calls (SQLite: memory-mapped reads)."""

    def _facts_from(self, row: Sequence[Any]) -> RunFacts:
        # by position, and times parsed with fromisoformat: this runs once per run of the period
        started = row[1]
        started = self._dt(started) if not isinstance(started, str) else datetime.fromisoformat(started)
        dims = {"org": row[4], "team": row[5], "repo": row[6], "user": row[7], "workflow": row[8],
                "agent": row[9], "model": row[10], "environment": row[11], "cohort": row[12],
                "trigger": row[13], "status": row[2]}
        return RunFacts(
            run_id=row[0], started_at=started, status=row[2], stop_reason=row[3], dims=dims, pr=row[14],
            enforced=bool(row[15]), turns=int(row[16]), cost_micros=int(row[17]),
            tokens=(int(row[18]), int(row[19]), int(row[20]), int(row[21]), int(row[22]), int(row[23])),
            platform=row[24], run_url=row[25], context_saved_micros=int(row[26] or 0), outcome=row[27],
            tests_fixed=int(row[28] or 0),
        )

    def pr_costs(self, repo: str, since: datetime) -> dict[int, int]:
        """Spend (micro-dollars) per PR/MR of ``repo`` over runs started since ``since`` (from run totals)."""
        rows = self._op(lambda tx: tx.all(
            "SELECT pr, SUM(cost_micros) FROM runs WHERE repo = ? AND pr IS NOT NULL AND started_at >= ?"
            " GROUP BY pr", (repo, self._ts(since))), write=False)
        return {int(pr): int(micros or 0) for pr, micros in rows}

    # --- outcomes ---------------------------------------------------------------------------------
    def set_pr_outcome(self, repo: str, pr: int, outcome: str, now: datetime | None = None) -> None:
        """What became of a pull/merge request; every run of it inherits this in reports."""
        if not repo or pr is None:
            raise InvalidInputError("an outcome per pull request needs the repository and the PR number")
        at = self._ts(now or datetime.now(UTC))
        self._op(lambda tx: tx.run(
            "INSERT INTO pr_outcomes (repo, pr, outcome, recorded_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (repo, pr) DO UPDATE SET outcome = excluded.outcome, recorded_at = excluded.recorded_at",
            (repo, int(pr), outcome, at)))

    def set_tests_fixed(self, run_id: str, count: int) -> None:
        """How many failing tests a (test-repair) run fixed."""
        def write(tx: Tx) -> None:
            if not tx.run("UPDATE runs SET tests_fixed = ? WHERE run_id = ?", (int(count), run_id)):
                raise InvalidInputError(f"no run {run_id!r} in the ledger {self.url}")

        self._op(write)

    # --- alerts -----------------------------------------------------------------------------------
    def claim_alert(self, key: str, kind: str, subject: str, now: datetime) -> bool:
        """Claim the alert ``key``: True for the one caller that inserts it, False for everyone after."""
        return bool(self._op(lambda tx: tx.run(
            "INSERT INTO alerts_sent (alert_key, kind, subject, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (alert_key) DO NOTHING", (key, kind, subject, self._ts(now)))))

    def alert_delivered(self, key: str, delivered: bool, attempts: int, error: str | None, now: datetime) -> None:
        self._op(lambda tx: tx.run(
            "UPDATE alerts_sent SET delivered_at = ?, attempts = ?, last_error = ? WHERE alert_key = ?",
            (self._ts(now) if delivered else None, attempts, error, key)))

    def alerts_sent(self) -> list[dict[str, Any]]:
        rows = self._op(lambda tx: tx.all("SELECT alert_key, kind, subject, created_at, delivered_at, attempts,"
                                          " last_error FROM alerts_sent ORDER BY created_at, alert_key"), write=False)
        return [{"key": r[0], "kind": r[1], "subject": r[2], "created_at": self._dt(r[3]),
                 "delivered_at": self._dt(r[4]), "attempts": int(r[5]), "last_error": r[6]} for r in rows]

    # --- history ----------------------------------------------------------------------------------
    def load_history(self, runs: Sequence[RunRecord], calls: Sequence[CallRecord],
                     pr_outcomes: Sequence[tuple[str, int, str]] = (), now: datetime | None = None) -> None:
        """Write finished runs *with their totals*, their calls and PR outcomes in one transaction (bulk).

        For history that did not go through the proxy (a generated pilot month, a backfill): the
        runs' totals are taken as given (the caller keeps them equal to the sum of the calls) and
        budget rollups are not touched, so reservations of live runs are unaffected.
        """
        from ci_guard.ledger.sqlstore import CALL_COLS, RUN_COLS, to_micros

        run_rows = []
        for run in runs:
            row = list(self._run_row(run))
            totals = {"turns": run.turns, "tool_calls": run.tool_calls, "cost_micros": to_micros(run.cost_usd),
                      **dict(zip(TOKEN_CLASSES, astuple(run.usage), strict=True)), "web_searches": run.web_searches,
                      "context_saved_micros": to_micros(run.context_saved_usd)}
            for name, value in totals.items():  # _run_row writes zero totals: a live run starts empty
                row[RUN_COLS.index(name)] = value
            run_rows.append(row)
        call_rows = [self._call_row(c, to_micros(c.cost_usd)) for c in calls]

        def write(tx: Tx) -> None:
            self._bulk(tx, "runs", RUN_COLS, run_rows)
            self._bulk(tx, "calls", CALL_COLS, call_rows)
            self._roll_up(tx, [r.run_id for r in runs] + [c.run_id for c in calls])
            fixed = [(r.tests_fixed, r.run_id) for r in runs if r.tests_fixed]
            if fixed:
                tx.many("UPDATE runs SET tests_fixed = ? WHERE run_id = ?", fixed)
            if pr_outcomes:
                at = self._ts(now or datetime.now(UTC))
                tx.many("INSERT INTO pr_outcomes (repo, pr, outcome, recorded_at) VALUES (?, ?, ?, ?)"
                        " ON CONFLICT (repo, pr) DO UPDATE SET outcome = excluded.outcome,"
                        " recorded_at = excluded.recorded_at", [(r, int(p), o, at) for r, p, o in pr_outcomes])

        self._op(write)

    def _bulk(self, tx: Tx, table: str, cols: Sequence[str], rows: list[Sequence[Any]]) -> None:
        if rows:
            tx.many(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
