from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from ci_guard.context.model import RunContext
from ci_guard.errors import InvalidInputError
from ci_guard.ledger.budgets import budget_keys, budget_spec

NOW = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)


def test_keys_for_known_scopes_only():
    budgets = [
        {"name": "org-monthly", "scope": "org", "period": "month", "limit_usd": 2000},
        {"name": "payments", "scope": "team", "period": "week", "limit_usd": 100},
        SimpleNamespace(name="per-user", scope="user", period="day", limit_usd=Decimal("5"), timezone="Asia/Tokyo"),
    ]
    keys = budget_keys(budgets, RunContext(org="acme", actor="alice"), NOW)
    assert [(k.budget, k.scope_key, k.limit_usd) for k in keys] == [
        ("org-monthly", "acme", Decimal("2000")), ("per-user", "alice", Decimal("5"))]
    assert keys[1].period_start == datetime(2026, 3, 14, 15, tzinfo=UTC)  # Tokyo midnight of the 15th


def test_float_limits_stay_exact():
    assert budget_spec({"name": "b", "limit_usd": 0.1}).limit_usd == Decimal("0.1")


@pytest.mark.parametrize("bad", [{"limit_usd": 1}, {"name": "b", "scope": "galaxy", "limit_usd": 1},
                                 {"name": "b", "limit_usd": -1}, {"name": "b", "limit_usd": "lots"}])
def test_invalid_budgets(bad):
    with pytest.raises(InvalidInputError):
        budget_spec(bad)
