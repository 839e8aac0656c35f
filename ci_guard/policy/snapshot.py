"""A budget source read from a JSON file, for dry runs and ``--budget-snapshot``.

The file maps a budget name (or ``name:scope_key`` for one bucket of a scoped budget) to what is
spent and reserved in the current period::

    {"org-monthly": {"spent_usd": "1700", "reserved_usd": "0"},
     "repo-daily:acme/payments-api": {"spent_usd": "39.5"}}

A budget missing from the file has spent nothing. Money is read as Decimal (strings or numbers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_guard.context.model import RunContext
from ci_guard.errors import InvalidInputError, Problem
from ci_guard.files import InputTooLarge, read_input_text
from ci_guard.policy.decision import BudgetStatus

if TYPE_CHECKING:
    from ci_guard.policy.models import Budget

_FIELDS = ("spent_usd", "reserved_usd")


class SnapshotBudgetSource:
    """:class:`ci_guard.policy.budget_source.BudgetSource` over a JSON snapshot file."""

    def __init__(self, path: str | Path | None = None, entries: dict[str, dict[str, Decimal]] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries = entries if entries is not None else _read(Path(path)) if path is not None else {}

    @classmethod
    def from_data(cls, data: Any, origin: str = "<budgets>") -> SnapshotBudgetSource:
        """A source from already-parsed snapshot data (policy test cases); raises InvalidInputError."""
        return cls(entries=_entries(Path(origin), data))

    def budget_status(self, budgets: Sequence[Budget], ctx: RunContext, now: datetime) -> list[BudgetStatus]:
        out = []
        for budget in budgets:
            key = ctx.scope_key(budget.scope)
            entry = self.entries.get(f"{budget.name}:{key}") if key is not None else None
            if entry is None:
                entry = self.entries.get(budget.name, {})
            start, end = period_bounds(budget.period, budget.timezone, now)
            out.append(BudgetStatus(
                name=budget.name, scope=budget.scope, scope_key=key, period=budget.period,
                period_start=start, period_end=end, limit_usd=budget.limit_usd,
                spent_usd=entry.get("spent_usd", Decimal(0)), reserved_usd=entry.get("reserved_usd", Decimal(0)),
            ))
        return out


def _read(path: Path) -> dict[str, dict[str, Decimal]]:
    try:
        data = json.loads(read_input_text(path), parse_float=Decimal)
    except FileNotFoundError:
        raise InvalidInputError(f"budget snapshot not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError("invalid budget snapshot", [
            Problem(f"invalid JSON: {exc.msg}", str(path), exc.lineno, exc.colno)]) from None
    except (OSError, UnicodeDecodeError, InputTooLarge, RecursionError) as exc:
        raise InvalidInputError(f"cannot read budget snapshot {path}: {type(exc).__name__}: {exc}") from None
    return _entries(path, data)


def _entries(path: Path, data: Any) -> dict[str, dict[str, Decimal]]:
    if isinstance(data, dict) and isinstance(data.get("budgets"), dict):
        data = data["budgets"]
    if not isinstance(data, dict):
        raise InvalidInputError("invalid budget snapshot", [Problem(
            'expected an object such as {"org-monthly": {"spent_usd": "1700"}}', str(path), 1, 1)])
    problems: list[Problem] = []
    out = {str(name): _entry(path, str(name), value, problems) for name, value in data.items()}
    if problems:
        raise InvalidInputError("invalid budget snapshot", problems)
    return out


def _entry(path: Path, name: str, value: Any, problems: list[Problem]) -> dict[str, Decimal]:
    if not isinstance(value, dict):
        problems.append(Problem('expected an object with "spent_usd" and optionally "reserved_usd"',
                                str(path), field=name))
        return {}
    out: dict[str, Decimal] = {}
    for key, raw in value.items():
        if key not in _FIELDS:
            problems.append(Problem(f"unknown key {key!r}; expected spent_usd or reserved_usd", str(path),
                                    field=f"{name}.{key}"))
            continue
        try:
            amount = Decimal(str(raw)) if not isinstance(raw, bool) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount < 0:
            problems.append(Problem(f"expected a non-negative amount in USD such as \"12.50\", got {raw!r}",
                                    str(path), field=f"{name}.{key}"))
            continue
        out[key] = amount
    return out


def period_bounds(period: str, timezone: str, now: datetime) -> tuple[datetime, datetime]:
    """The calendar period containing ``now`` in ``timezone`` (weeks start on Monday), as UTC."""
    from datetime import UTC
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    # Re-attach the zone after date arithmetic so DST shifts give the true local midnight.
    tz = ZoneInfo(timezone)
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    end = end.replace(tzinfo=None).replace(tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def zero_statuses(budgets: Sequence[Budget], ctx: RunContext, now: datetime) -> list[BudgetStatus]:
    """Statuses with nothing spent, when no budget source is configured."""
    out = []
    for budget in budgets:
        start, end = period_bounds(budget.period, budget.timezone, now)
        out.append(BudgetStatus(name=budget.name, scope=budget.scope, scope_key=ctx.scope_key(budget.scope),
                                period=budget.period, period_start=start, period_end=end,
                                limit_usd=budget.limit_usd))
    return out
