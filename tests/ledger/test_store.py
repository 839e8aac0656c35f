"""The Store contract, run against SQLite and PostgreSQL alike (see conftest.ledger_url)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from ci_guard.context.model import RunContext
from ci_guard.errors import BudgetExceededError, InvalidInputError, LedgerError
from ci_guard.ledger import migrations, open_ledger
from ci_guard.ledger.budgets import budget_keys
from ci_guard.pricing.usage import Usage
from tests.ledger.factories import BUDGETS, CTX, NOW, call, run


def statuses(store, now=NOW, ctx=CTX):
    return {b.name: b for b in store.budget_status(BUDGETS, ctx, now)}


def test_migrate_is_versioned_and_idempotent(store, ledger_url):
    latest = migrations.latest_version(store.backend)
    assert latest >= 1
    assert store.migrate() == latest
    again = open_ledger(ledger_url)  # opening an up-to-date ledger applies nothing
    assert again.migrate() == latest
    again.close()


def test_a_version_1_ledger_is_upgraded_in_place_without_losing_rows(ledger_url, monkeypatch):
    full = migrations.load
    first_only = [m for m in full("sqlite" if ledger_url.startswith("sqlite") else "postgres") if m.version == 1]
    monkeypatch.setattr(migrations, "load", lambda backend: first_only)
    monkeypatch.setattr(migrations, "latest_version", lambda backend: 1)
    old = open_ledger(ledger_url)  # a ledger as version 1 left it, with a run and a call in it
    old._op(lambda tx: tx.run("INSERT INTO runs (run_id, started_at, decision, status, cost_micros, turns)"
                              " VALUES (?, ?, 'allow', 'completed', 1500, 1)", ("r-old", old._ts(NOW))))
    old._op(lambda tx: tx.run("INSERT INTO calls (run_id, seq, started_at, ended_at, provider, endpoint,"
                              " cost_micros, status) VALUES (?, 1, ?, ?, 'anthropic', 'messages', 1500, 'ok')",
                              ("r-old", old._ts(NOW), old._ts(NOW))))
    old.close()
    monkeypatch.undo()

    upgraded = open_ledger(ledger_url)  # opening migrates to the latest version
    try:
        assert upgraded.migrate() == migrations.latest_version(upgraded.backend) >= 2
        got = upgraded.get_run("r-old")
        assert (got.cost_usd, got.turns, got.web_searches) == (Decimal("0.0015"), 1, 0)
        calls = upgraded.list_calls("r-old")
        assert [(c.seq, c.cost_usd, c.web_searches) for c in calls] == [(1, Decimal("0.0015"), 0)]
    finally:
        upgraded.close()


def test_web_searches_are_kept_per_call_and_summed_per_run(store):
    store.start_run(run("r-ws"))
    store.record_call(call("r-ws", 1, "0.02", web_searches=2))
    store.record_call(call("r-ws", 2, "0.01", web_searches=1))
    store.record_call(call("r-ws", 3, "0.001"))
    assert [c.web_searches for c in store.list_calls("r-ws")] == [2, 1, 0]
    got = store.get_run("r-ws")
    assert (got.web_searches, got.cost_usd) == (3, Decimal("0.031"))


def test_run_round_trip_keeps_attribution(store):
    record = run("r-1", team="payments", workflow="review.yml", environment="ci", trigger="pull_request",
                 branch="feature/x", cohort="wave-2", platform="github", limits={"max_cost_usd": "2.00"},
                 enforced=False, reason="why")
    store.start_run(record)
    got = store.get_run("r-1")
    assert got.started_at == NOW
    assert (got.org, got.team, got.repo, got.user, got.pr) == ("acme", "payments", "acme/api", "alice", 7)
    assert (got.workflow, got.environment, got.trigger, got.branch, got.cohort) == (
        "review.yml", "ci", "pull_request", "feature/x", "wave-2")
    assert got.limits == {"max_cost_usd": "2.00"}
    assert got.enforced is False
    assert got.status == "running" and got.cost_usd == 0
    assert store.get_run("nope") is None


def test_duplicate_run_is_refused(store):
    store.start_run(run("r-1"))
    with pytest.raises(LedgerError, match="already"):
        store.start_run(run("r-1"))


def test_record_call_updates_run_totals_and_every_rollup(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    assert [k.budget for k in keys] == ["org-monthly", "repo-daily"]  # no team: team budget skipped
    store.start_run(run("r-1"), keys)
    store.record_call(call("r-1", 1, "0.123456", tool_calls=2))
    store.record_call(call("r-1", 2, "0.000001", is_turn=False))
    got = store.get_run("r-1")
    assert got.cost_usd == Decimal("0.123457")
    assert (got.turns, got.tool_calls) == (1, 2)
    assert got.usage == Usage(input_tokens=200, cache_read_tokens=4000, output_tokens=100, reasoning_tokens=20)
    status = statuses(store)
    assert status["org-monthly"].spent_usd == Decimal("0.123457")
    assert status["repo-daily"].spent_usd == Decimal("0.123457")
    assert status["team-weekly"].scope_key is None and status["team-weekly"].spent_usd == 0


def test_record_call_is_idempotent_per_sequence_number(store):
    store.start_run(run("r-1"), budget_keys(BUDGETS, CTX, NOW))
    store.record_call(call("r-1", 1, "0.5"))
    store.record_call(call("r-1", 1, "0.5"))  # a retried write of the same call
    assert store.get_run("r-1").cost_usd == Decimal("0.5")
    assert statuses(store)["org-monthly"].spent_usd == Decimal("0.5")
    assert len(store.list_calls("r-1")) == 1


def test_call_for_unknown_run_writes_nothing(store):
    with pytest.raises(LedgerError, match="not in the ledger"):
        store.record_call(call("ghost", 1, "1"))
    assert store.list_calls("ghost") == []


def test_call_round_trip(store):
    store.start_run(run("r-1"))
    store.record_call(call("r-1", 1, "0.25", status="cut", http_status=200, stream=True, context_tokens=2100,
                           latency_ms=812.5, fingerprint="abc", error="stream ended", session_id="s-1"))
    got = store.list_calls("r-1")[0]
    assert (got.status, got.http_status, got.stream, got.context_tokens) == ("cut", 200, True, 2100)
    assert (got.latency_ms, got.fingerprint, got.error, got.session_id) == (812.5, "abc", "stream ended", "s-1")
    assert got.model_served == "claude-sonnet-4-5-20250929" and got.cost_usd == Decimal("0.25")
    assert got.started_at == NOW


def test_budget_status_counts_scopes_separately(store):
    other = RunContext(org="acme", repo="acme/web")
    store.start_run(run("r-1"), budget_keys(BUDGETS, CTX, NOW))
    store.record_call(call("r-1", 1, "1.25"))
    store.start_run(run("r-2", repo="acme/web"), budget_keys(BUDGETS, other, NOW))
    store.record_call(call("r-2", 1, "0.75"))
    assert statuses(store)["repo-daily"].spent_usd == Decimal("1.25")
    assert statuses(store, ctx=other)["repo-daily"].spent_usd == Decimal("0.75")
    assert statuses(store)["org-monthly"].spent_usd == Decimal("2.00")
    # the next day starts a fresh daily bucket; the month goes on
    tomorrow = statuses(store, now=NOW + timedelta(days=1))
    assert tomorrow["repo-daily"].spent_usd == 0 and tomorrow["org-monthly"].spent_usd == Decimal("2")


def test_reservation_counts_until_settled_and_spend_replaces_it(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    res = store.reserve("r-1", keys, Decimal("2"), ttl_s=600, now=NOW)
    assert res.amount_usd == Decimal("2") and res.expires_at == NOW + timedelta(seconds=600)
    assert statuses(store)["repo-daily"].reserved_usd == Decimal("2")
    store.start_run(run("r-1"), keys)
    store.record_call(call("r-1", 1, "0.5"))
    daily = statuses(store)["repo-daily"]
    # spend so far is counted once: 0.5 spent + 1.5 still held
    assert (daily.spent_usd, daily.reserved_usd, daily.remaining_usd) == (Decimal("0.5"), Decimal("1.5"),
                                                                          Decimal("1.0"))
    store.settle("r-1")
    daily = statuses(store)["repo-daily"]
    assert (daily.spent_usd, daily.reserved_usd) == (Decimal("0.5"), 0)


def test_reservation_is_all_or_none(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("r-1", keys, Decimal("2.5"), ttl_s=600, now=NOW)  # repo-daily: 0.5 left; org: 7.5 left
    with pytest.raises(BudgetExceededError) as info:
        store.reserve("r-2", keys, Decimal("1"), ttl_s=600, now=NOW)
    assert "repo-daily" in info.value.budget
    assert info.value.reserved_usd == Decimal("2.5") and info.value.requested_usd == Decimal("1")
    # nothing was held on the budget that had room
    assert statuses(store)["org-monthly"].reserved_usd == Decimal("2.5")


def test_clamp_lowers_to_the_tightest_remaining_and_fails_when_nothing_is_left(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("r-1", keys, Decimal("2.75"), ttl_s=600, now=NOW)
    clamped = store.reserve("r-2", keys, Decimal("2"), ttl_s=600, now=NOW, clamp=True)
    assert clamped.amount_usd == Decimal("0.25")
    assert statuses(store)["org-monthly"].reserved_usd == Decimal("3.00")
    with pytest.raises(BudgetExceededError):
        store.reserve("r-3", keys, Decimal("1"), ttl_s=600, now=NOW, clamp=True)


def test_expired_reservations_are_ignored(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("dead", keys, Decimal("3"), ttl_s=60, now=NOW)
    assert statuses(store)["repo-daily"].remaining_usd == 0
    later = NOW + timedelta(seconds=61)
    assert statuses(store, now=later)["repo-daily"].reserved_usd == 0
    res = store.reserve("r-2", keys, Decimal("3"), ttl_s=60, now=later)
    assert res.amount_usd == Decimal("3")


def test_spend_never_passes_limit_through_reservations(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    granted = []
    for i in range(10):
        try:
            store.reserve(f"r-{i}", keys, Decimal("0.70"), ttl_s=600, now=NOW)
            granted.append(i)
        except BudgetExceededError:
            pass
    assert granted == [0, 1, 2, 3]  # 4 x 0.70 = 2.80 <= 3 < 5 x 0.70


def test_zero_keys_reserve_nothing(store):
    res = store.reserve("r-1", [], Decimal("5"), ttl_s=60, now=NOW)
    assert res.keys == [] and res.amount_usd == Decimal("5")


def test_finish_and_outcome(store):
    store.start_run(run("r-1"))
    store.finish_run("r-1", "stopped", "max_cost", NOW + timedelta(minutes=3), agent_exit_code=143,
                     session_id="sess")
    store.set_outcome("r-1", "merged")
    got = store.get_run("r-1")
    assert (got.status, got.stop_reason, got.agent_exit_code, got.session_id, got.outcome) == (
        "stopped", "max_cost", 143, "sess", "merged")
    assert got.ended_at == NOW + timedelta(minutes=3)
    with pytest.raises(InvalidInputError):
        store.set_outcome("missing", "merged")
    with pytest.raises(LedgerError):
        store.finish_run("missing", "completed", None, NOW)


def test_list_runs_filters_and_orders(store):
    for i in range(5):
        store.start_run(run(f"r-{i}", started_at=NOW + timedelta(minutes=i), pr=7 if i % 2 else 8,
                            repo="acme/api" if i < 4 else "acme/web"))
    store.finish_run("r-3", "completed", None, NOW)
    assert [r.run_id for r in store.list_runs()] == ["r-4", "r-3", "r-2", "r-1", "r-0"]
    assert [r.run_id for r in store.list_runs(repo="acme/api", pr=7)] == ["r-3", "r-1"]
    assert [r.run_id for r in store.list_runs(status="completed")] == ["r-3"]
    assert [r.run_id for r in store.list_runs(since=NOW + timedelta(minutes=3))] == ["r-4", "r-3"]
    assert len(store.list_runs(limit=2)) == 2


def test_list_calls_across_runs_and_filters(store):
    store.start_run(run("a"))
    store.start_run(run("b", repo="acme/web"))
    store.record_call(call("a", 1, "1", at=NOW))
    store.record_call(call("a", 2, "1", at=NOW + timedelta(seconds=5), status="error"))
    store.record_call(call("b", 1, "1", at=NOW + timedelta(seconds=9)))
    assert [(c.run_id, c.seq) for c in store.list_calls()] == [("b", 1), ("a", 2), ("a", 1)]
    assert [c.seq for c in store.list_calls("a")] == [1, 2]
    assert [(c.run_id, c.seq) for c in store.list_calls(repo="acme/api")] == [("a", 2), ("a", 1)]
    assert [(c.run_id, c.seq) for c in store.list_calls(status="error")] == [("a", 2)]


def test_report_groups_runs_of_a_period(store):
    store.start_run(run("a"))
    store.start_run(run("b", repo="acme/web"))
    store.start_run(run("c", started_at=NOW + timedelta(days=40)))
    store.record_call(call("a", 1, "1.5"))
    store.record_call(call("b", 1, "0.25"))
    store.record_call(call("c", 1, "9"))
    rows = store.report(NOW - timedelta(days=1), NOW + timedelta(days=1), group_by="repo")
    assert [(r["repo"], r["runs"], r["cost_usd"]) for r in rows] == [
        ("acme/api", 1, Decimal("1.5")), ("acme/web", 1, Decimal("0.25"))]
    with pytest.raises(InvalidInputError):
        store.report(NOW, NOW, group_by="password")


def test_bucket_rows_list_every_scope_key(store):
    store.start_run(run("a"), budget_keys(BUDGETS, CTX, NOW))
    other = RunContext(org="acme", repo="acme/web")
    store.start_run(run("b", repo="acme/web"), budget_keys(BUDGETS, other, NOW))
    store.record_call(call("a", 1, "1"))
    store.reserve("b", budget_keys(BUDGETS, other, NOW), Decimal("0.5"), 600, NOW)
    start = budget_keys(BUDGETS, CTX, NOW)[1].period_start
    rows = store.bucket_rows("repo-daily", start, NOW)
    assert [(r["scope_key"], r["spent_usd"], r["reserved_usd"], r["runs"]) for r in rows] == [
        ("acme/api", Decimal("1"), 0, 1), ("acme/web", 0, Decimal("0.5"), 1)]


def test_record_calls_writes_a_batch_all_or_nothing(store):
    store.start_run(run("r-batch"))
    store.record_calls([call("r-batch", 1, "0.01"), call("r-batch", 2, "0.02"), call("r-batch", 2, "0.02")])
    got = store.get_run("r-batch")
    assert (got.turns, got.cost_usd) == (2, Decimal("0.03"))  # the repeated call counted once
    with pytest.raises(LedgerError, match="not in the ledger"):
        store.record_calls([call("r-batch", 3, "0.03"), call("no-such-run", 1, "0.01")])
    assert [c.seq for c in store.list_calls("r-batch")] == [1, 2]  # the failed batch left nothing behind
