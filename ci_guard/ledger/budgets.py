"""Which budget buckets a run falls into: (budget, scope key, calendar period).

Budgets come from the policy; they are read defensively (the pydantic ``Budget`` model or a plain
mapping) so the ledger does not depend on the policy model's internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from ci_guard.context.model import RunContext
from ci_guard.errors import InvalidInputError, Problem
from ci_guard.ledger.periods import period_bounds
from ci_guard.ledger.store import BudgetKey
from ci_guard.policy.decision import BudgetStatus
from ci_guard.pricing.rates import to_decimal

SCOPES = ("org", "team", "repo", "user", "workflow", "agent")


@dataclass(frozen=True)
class BudgetSpec:
    name: str
    scope: str
    period: str
    limit_usd: Decimal
    timezone: str | None = None


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def budget_spec(budget: Any) -> BudgetSpec:
    """Read one policy budget (object or mapping)."""
    name = _get(budget, "name")
    field = f"budgets.{name}" if name else "budgets"
    if not name:
        raise InvalidInputError("invalid budget", [Problem("a budget needs a name", field=field)])
    scope = str(_get(budget, "scope") or "org")
    if scope not in SCOPES:
        raise InvalidInputError("invalid budget", [
            Problem(f"expected a scope among {', '.join(SCOPES)}, got {scope!r}", field=f"{field}.scope")
        ])
    limit = to_decimal(_get(budget, "limit_usd"), "<policy>", f"{field}.limit_usd")
    tz = _get(budget, "timezone") or _get(budget, "tz")
    return BudgetSpec(str(name), scope, str(_get(budget, "period") or "month"), limit,
                      str(tz) if tz else None)


def budget_keys(budgets: Sequence[Any], ctx: RunContext, now: datetime) -> list[BudgetKey]:
    """The buckets a run with context ``ctx`` starting at ``now`` counts against.

    Budgets whose scope key is unknown for this context (a team budget for an actor in no team, an
    org budget for a local run) are skipped: there is no bucket to charge.
    """
    keys = []
    for spec in map(budget_spec, budgets):
        scope_key = ctx.scope_key(spec.scope)
        if scope_key is None:
            continue
        start, end = period_bounds(spec.period, spec.timezone, now)
        keys.append(BudgetKey(spec.name, scope_key, start, end, spec.limit_usd))
    return keys


def empty_status(spec: BudgetSpec, scope_key: str | None, now: datetime) -> BudgetStatus:
    start, end = period_bounds(spec.period, spec.timezone, now)
    return BudgetStatus(name=spec.name, scope=spec.scope, scope_key=scope_key, period=spec.period,
                        period_start=start, period_end=end, limit_usd=spec.limit_usd)
