"""The decision pipeline shared by `check`, `explain`, `run` and `start`.

``load_policy`` -> ``evaluate`` (team resolution, budget statuses, ``on_ledger_error``, engine).
Budget statuses come from a :class:`~ci_guard.policy.budget_source.BudgetSource`: a snapshot file,
the ledger, or nothing (then every budget reports nothing spent and the decision says so).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_guard.context.model import RunContext
from ci_guard.errors import LedgerError
from ci_guard.policy.decision import Decision
from ci_guard.policy.engine import compiled, decide, resolve_team
from ci_guard.policy.models import Policy
from ci_guard.policy.snapshot import zero_statuses

if TYPE_CHECKING:
    from ci_guard.policy.budget_source import BudgetSource

NO_SOURCE_NOTE = "no budget source (no --budget-snapshot, no ledger): budgets show nothing spent"


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file (raises PolicyError listing every problem)."""
    from ci_guard.policy.loader import load_policy_file

    return load_policy_file(path)


def evaluate(policy: Policy, ctx: RunContext, *, budget_source: BudgetSource | None = None,
             now: datetime | None = None) -> Decision:
    """Decide one run: resolve the team, read budget statuses, apply the engine."""
    now = now or datetime.now(UTC)
    ctx = resolve_team(policy, ctx)
    notes: list[str] = []
    if not policy.budgets:
        statuses = []
    elif budget_source is None:
        statuses = zero_statuses(policy.budgets, ctx, now)
        notes.append(NO_SOURCE_NOTE)
    else:
        try:
            statuses = budget_source.budget_status(policy.budgets, ctx, now)
        except LedgerError as exc:
            return _ledger_error(policy, ctx, now, exc)
    decision = decide(policy, ctx, statuses, now)
    if notes:
        decision.notes[:0] = notes
    return decision


def _ledger_error(policy: Policy, ctx: RunContext, now: datetime, exc: LedgerError) -> Decision:
    from ci_guard.secrets import redact

    problem = redact(exc.render())
    if policy.enforcement.on_ledger_error == "deny":
        return Decision(
            decision="deny", rule="on_ledger_error",
            reason=f"budgets could not be read from the ledger and enforcement.on_ledger_error is deny: {problem}",
            enforcement=compiled(policy).enforcement, context=ctx,
            hint="fix the ledger connection, or set enforcement.on_ledger_error: allow",
        )
    decision = decide(policy, ctx, zero_statuses(policy.budgets, ctx, now), now)
    decision.notes.insert(0, f"budgets could not be read from the ledger ({problem}); "
                             f"deciding as if nothing were spent (enforcement.on_ledger_error: allow)")
    return decision


class _BrokenSource:
    """A source whose ledger could not be opened: reading it raises, so on_ledger_error applies."""

    def __init__(self, error: LedgerError) -> None:
        self.error = error

    def budget_status(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


def open_budget_source(snapshot_path: str | None, ledger_url: str | None,
                       environ: dict[str, str] | None = None) -> BudgetSource | None:
    """The snapshot if given; else the ledger (URL, $CI_GUARD_LEDGER, or an existing default file)."""
    if snapshot_path:
        from ci_guard.policy.snapshot import SnapshotBudgetSource

        return SnapshotBudgetSource(snapshot_path)
    env = os.environ if environ is None else environ
    url = ledger_url or env.get("CI_GUARD_LEDGER")
    if not url:
        from ci_guard.ledger import default_ledger_path

        default = default_ledger_path(env)
        url = f"sqlite:///{default}" if default.is_file() else None
    if not url:
        return None
    try:
        from ci_guard.ledger import open_ledger  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        return open_ledger(url)  # type: ignore[no-any-return]
    except LedgerError as exc:
        return _BrokenSource(exc)


def close_source(source: object) -> None:
    """Close a ledger store (snapshots have nothing to close)."""
    close = getattr(source, "close", None)
    if callable(close):
        close()
