from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import InvalidInputError, LedgerUnavailableError
from ci_guard.policy.decide import NO_SOURCE_NOTE, evaluate, open_budget_source
from ci_guard.policy.loader import policy_from_text
from ci_guard.policy.models import Policy
from ci_guard.policy.snapshot import SnapshotBudgetSource, period_bounds
from tests.policy.conftest import pr_context

NOW = datetime(2025, 6, 15, 12, tzinfo=UTC)


class Broken:
    def budget_status(self, *args: object) -> list[object]:
        raise LedgerUnavailableError("connection refused to postgresql://u:***@db/ledger")


def test_no_source_reports_nothing_spent(default_policy: Policy) -> None:
    d = evaluate(default_policy, pr_context(), now=NOW)
    assert d.notes[0] == NO_SOURCE_NOTE
    assert [(b.name, b.spent_usd, b.scope_key) for b in d.budgets] == [
        ("org-monthly", 0, "acme"), ("repo-daily", 0, "acme/web")]
    assert d.budgets[0].period_start == datetime(2025, 6, 1, tzinfo=UTC)


def test_snapshot_by_name_and_by_scope_key(tmp_path: Path, default_policy: Policy) -> None:
    snap = tmp_path / "b.json"
    snap.write_text(json.dumps({"org-monthly": {"spent_usd": "1700", "reserved_usd": 1.5},
                                "repo-daily:acme/web": {"spent_usd": "39.5"},
                                "repo-daily": {"spent_usd": "1"}}))
    d = evaluate(default_policy, pr_context(), budget_source=SnapshotBudgetSource(snap), now=NOW)
    assert d.rule == "budget-nearly-spent"
    assert [(b.spent_usd, b.reserved_usd) for b in d.budgets] == [(Decimal(1700), Decimal("1.5")),
                                                                  (Decimal("39.5"), 0)]
    other = evaluate(default_policy, pr_context(repo="acme/api"), budget_source=SnapshotBudgetSource(snap), now=NOW)
    assert other.budgets[1].spent_usd == Decimal(1)


def test_bad_snapshots_are_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": {"spent_usd": "x", "spnt": 1}, "b": 3}')
    with pytest.raises(InvalidInputError) as info:
        SnapshotBudgetSource(bad)
    text = info.value.render()
    assert "a.spent_usd: expected a non-negative amount" in text and "a.spnt: unknown key" in text
    assert "b: expected an object" in text
    bad.write_text('{"a": \n')
    with pytest.raises(InvalidInputError) as info:
        SnapshotBudgetSource(bad)
    assert "bad.json:2:1: invalid JSON" in info.value.render()


def test_ledger_error_denies_by_default(default_policy: Policy) -> None:
    d = evaluate(default_policy, pr_context(), budget_source=Broken(), now=NOW)  # type: ignore[arg-type]
    assert (d.decision, d.rule) == ("deny", "on_ledger_error")
    assert "on_ledger_error is deny" in (d.reason or "") and "connection refused" in (d.reason or "")


def test_ledger_error_allow_decides_with_a_note() -> None:
    policy = policy_from_text("""\
version: 1
budgets: [{name: b, scope: org, period: day, limit_usd: 5}]
enforcement: {on_ledger_error: allow}
rules: [{name: a, decision: allow}]
""")
    d = evaluate(policy, pr_context(), budget_source=Broken(), now=NOW)  # type: ignore[arg-type]
    assert (d.decision, d.rule) == ("allow", "a")
    assert "could not be read from the ledger" in d.notes[0]


def test_open_budget_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert open_budget_source(None, None, environ={}) is None
    snap = tmp_path / "s.json"
    snap.write_text("{}")
    assert isinstance(open_budget_source(str(snap), "sqlite:///x.db", environ={}), SnapshotBudgetSource)


@pytest.mark.parametrize(("period", "tz", "start", "end"), [
    ("day", "UTC", datetime(2025, 6, 15, tzinfo=UTC), datetime(2025, 6, 16, tzinfo=UTC)),
    ("week", "UTC", datetime(2025, 6, 9, tzinfo=UTC), datetime(2025, 6, 16, tzinfo=UTC)),
    ("month", "UTC", datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)),
    ("day", "Europe/Berlin", datetime(2025, 6, 14, 22, tzinfo=UTC), datetime(2025, 6, 15, 22, tzinfo=UTC)),
    ("month", "Europe/Berlin", datetime(2025, 5, 31, 22, tzinfo=UTC), datetime(2025, 6, 30, 22, tzinfo=UTC)),
])
def test_period_bounds(period: str, tz: str, start: datetime, end: datetime) -> None:
    assert period_bounds(period, tz, NOW) == (start, end)


def test_month_bounds_across_dst_and_year_end() -> None:
    assert period_bounds("month", "Europe/Berlin", datetime(2025, 3, 15, tzinfo=UTC)) == (
        datetime(2025, 2, 28, 23, tzinfo=UTC), datetime(2025, 3, 31, 22, tzinfo=UTC))
    assert period_bounds("month", "UTC", datetime(2025, 12, 31, 23, tzinfo=UTC))[1] == datetime(2026, 1, 1, tzinfo=UTC)
