"""The store interface every ledger backend implements (SQLite, PostgreSQL).

Opened by URL through :func:`ci_guard.ledger.open_ledger`. Methods are synchronous; the proxy
calls them from a worker thread so a slow database never stalls a stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from ci_guard.context.model import RunContext
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.policy.decision import BudgetStatus

if TYPE_CHECKING:
    from ci_guard.ledger.analytics import RunFacts
    from ci_guard.ledger.sqlstore import ExportSnapshot
    from ci_guard.policy.models import Budget


@dataclass(frozen=True)
class BudgetKey:
    """One budget bucket: a named budget, for one scope key, in one calendar period."""

    budget: str
    scope_key: str
    period_start: datetime
    period_end: datetime
    limit_usd: Decimal


@dataclass
class Reservation:
    run_id: str
    amount_usd: Decimal  # what was reserved on every key (may be clamped below the request)
    keys: list[BudgetKey]
    expires_at: datetime


# The process that meters a running run: (pid, that process's start time, host); see ci_guard.meter.owners.
RunOwner = tuple[int, str | None, str]


class Store(Protocol):
    url: str  # redacted: safe to print

    def migrate(self) -> int:
        """Apply pending schema migrations; return the schema version now in force."""
        ...

    # budgets -------------------------------------------------------------------------------
    def budget_status(
        self, budgets: Sequence[Budget], ctx: RunContext, now: datetime
    ) -> list[BudgetStatus]:
        """The :class:`BudgetSource` interface, read from rollups plus the escrow of open runs (never a
        scan of calls)."""
        ...

    def reserve(
        self, run_id: str, keys: Sequence[BudgetKey], amount_usd: Decimal, ttl_s: int,
        now: datetime, clamp: bool = False,
    ) -> Reservation:
        """Reserve ``amount_usd`` on every key atomically (all or none).

        Raises :class:`ci_guard.errors.BudgetExceededError` when spent + outstanding reservations
        + amount would pass a limit, unless ``clamp`` is true, in which case the reservation is
        lowered to what remains on the tightest key (and fails only when nothing remains).
        Expired reservations are ignored.
        """
        ...

    def reserve_and_start(
        self, run_id: str, keys: Sequence[BudgetKey], amount_usd: Decimal, ttl_s: int, now: datetime,
        run_for: Callable[[Decimal], RunRecord], clamp: bool = False, owner: RunOwner | None = None,
    ) -> Reservation:
        """:meth:`reserve`, then :meth:`start_run` of ``run_for(amount reserved)`` with ``keys`` and ``owner``
        (as :meth:`set_run_owner`), all in one transaction. Raises like :meth:`reserve`, starting nothing."""
        ...

    def settle(self, run_id: str) -> None:
        """Release the run's reservation and move its escrow (the spend of its calls) into the rollups,
        once: settling again moves nothing."""
        ...

    # runs and calls ------------------------------------------------------------------------
    def start_run(self, run: RunRecord, keys: Sequence[BudgetKey] = (), owner: RunOwner | None = None) -> None:
        """Insert a run and remember which budget keys its calls count against (and its owner, if given)."""
        ...

    def record_call(self, call: CallRecord) -> None:
        """Insert one call and add its cost to the run's totals and to its escrow (the run's own
        reservation rows; the budget rollup where it holds none), in one transaction."""
        ...

    def record_calls(self, calls: Sequence[CallRecord]) -> None:
        """Like :meth:`record_call` for several calls, all in one transaction (all or none)."""
        ...

    def finish_run(
        self, run_id: str, status: str, stop_reason: str | None, ended_at: datetime,
        agent_exit_code: int | None = None, session_id: str | None = None,
    ) -> None:
        ...

    def set_run_owner(self, run_id: str, pid: int, started: str | None, host: str) -> None:
        """Record the process that meters a running run: its pid, that process's start time and its
        host (see ci_guard.meter.owners), so a later command can tell whether it died."""
        ...

    def running_runs_owned_on(self, host: str) -> list[tuple[str, int, str | None]]:
        """(run_id, owner pid, owner start time) of every running run whose owner is on ``host``."""
        ...

    def set_outcome(self, run_id: str, outcome: str) -> None:
        ...

    def set_pr_outcome(self, repo: str, pr: int, outcome: str, now: datetime | None = None) -> None:
        """What became of a PR/MR; its runs inherit it in reports unless they have their own."""
        ...

    def set_tests_fixed(self, run_id: str, count: int) -> None:
        ...

    def period_runs(self, start: datetime, end: datetime, *, with_calls: bool = True) -> list[RunFacts]:
        """Runs started in ``[start, end)`` with totals, PR outcome and call sums per model (from SQL)."""
        ...

    def load_history(self, runs: Sequence[RunRecord], calls: Sequence[CallRecord],
                     pr_outcomes: Sequence[tuple[str, int, str]] = (), now: datetime | None = None) -> None:
        """Bulk-write finished runs with their totals, their calls and PR outcomes (one transaction)."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        ...

    def list_runs(
        self, *, repo: str | None = None, pr: int | None = None, since: datetime | None = None,
        status: str | None = None, limit: int = 50,
    ) -> list[RunRecord]:
        """Most recent first."""
        ...

    def list_calls(self, run_id: str | None = None, *, limit: int = 1000) -> list[CallRecord]:
        """In order of ``seq`` for one run; most recent first across runs."""
        ...

    def export_calls(self, start: datetime, end: datetime) -> Iterator[tuple[CallRecord, RunRecord]]:
        """Every call started in ``[start, end)`` with its run, oldest first (read in pages)."""
        ...

    def export_rows(self, start: datetime, end: datetime) -> Iterator[list[tuple[Any, ...]]]:
        """The same calls as pages of plain tuples (``sqlstore.EXPORT_ROW_COLS``): the bulk FOCUS export."""
        ...

    def export_snapshot(self) -> AbstractContextManager[ExportSnapshot]:
        """One read snapshot for a bulk export (the FOCUS CSV export; see sqlstore.ExportSnapshot)."""
        ...

    def close(self) -> None:
        ...
