"""A run's escrow (schema version 11), on SQLite and PostgreSQL.

A run reserves from its budget rows once; its calls add to its own reservation rows, not to the
organisation-wide rollup rows; settle -- or the expiry of an abandoned run's hold -- moves the escrow
into the rollup exactly once. Every read of "spent" (budget status, bucket rows, the next reservation,
`ci-guard budget status`) counts the open runs' escrow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.errors import BudgetExceededError, LedgerError
from ci_guard.ledger import open_ledger
from ci_guard.ledger.budgets import budget_keys
from tests.helpers import run_cli
from tests.ledger.factories import BUDGETS, CTX, NOW, call, run
from tests.ledger.test_concurrency import run_racers

ROOT = Path(__file__).resolve().parents[2]
TINY = [{"name": "tiny", "scope": "repo", "period": "day", "limit_usd": "1.00"},
        {"name": "org", "scope": "org", "period": "month", "limit_usd": "100"}]


def statuses(store, now=NOW, budgets=BUDGETS):
    return {b.name: b for b in store.budget_status(budgets, CTX, now)}


def rollup_micros(store, budget: str) -> int:
    """The shared rollup row itself (what the escrow keeps calls away from)."""
    row = store._op(lambda tx: tx.one("SELECT COALESCE(SUM(spent_micros), 0) FROM budget_rollups WHERE budget = ?",
                                      (budget,)), write=False)
    return int(row[0])


def open_holds(store) -> int:
    return int(store._op(lambda tx: tx.one("SELECT COUNT(DISTINCT run_id) FROM reservations WHERE settled = {false}"),
                         write=False)[0])


def test_calls_go_to_the_escrow_and_settle_moves_them_exactly_once(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("r-1", keys, Decimal("2"), ttl_s=600, now=NOW)
    store.start_run(run("r-1"), keys)
    store.record_calls([call("r-1", 1, "0.25"), call("r-1", 2, "0.125")])
    store.record_call(call("r-1", 3, "0.000001"))
    store.record_call(call("r-1", 3, "0.000001"))  # a retried write counts once
    assert rollup_micros(store, "repo-daily") == 0  # no call touched the shared row
    daily = statuses(store)["repo-daily"]
    assert (daily.spent_usd, daily.reserved_usd) == (Decimal("0.375001"), Decimal("1.624999"))
    store.settle("r-1")
    assert rollup_micros(store, "repo-daily") == 375_001
    store.settle("r-1")  # idempotent
    for name in ("repo-daily", "org-monthly", "team-weekly"):
        status = statuses(store).get(name)
        if status.scope_key is not None:
            assert (status.spent_usd, status.reserved_usd) == (Decimal("0.375001"), 0)
    rows = store.bucket_rows("repo-daily", keys[1].period_start, NOW)
    assert [(r["spent_usd"], r["reserved_usd"], r["calls"], r["runs"]) for r in rows] == [
        (Decimal("0.375001"), 0, 3, 1)]
    assert store.get_run("r-1").cost_usd == Decimal("0.375001")
    assert open_holds(store) == 0


def test_a_call_after_settle_goes_to_the_rollup(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("late", keys, Decimal("1"), ttl_s=600, now=NOW)
    store.start_run(run("late"), keys)
    store.record_call(call("late", 1, "0.5"))
    store.settle("late")
    store.record_call(call("late", 2, "0.25"))  # a straggler written after the run settled
    assert statuses(store)["repo-daily"].spent_usd == Decimal("0.75")
    assert rollup_micros(store, "repo-daily") == 750_000


def test_reads_of_spent_include_open_runs(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("open", keys, Decimal("1"), ttl_s=600, now=NOW)
    store.start_run(run("open"), keys)
    store.record_call(call("open", 1, "0.75"))
    store.start_run(run("imported"), keys)  # no reservation: straight into the rollups, as before
    store.record_call(call("imported", 1, "0.5"))
    daily = statuses(store)["repo-daily"]
    assert (daily.spent_usd, daily.reserved_usd, daily.remaining_usd) == (
        Decimal("1.25"), Decimal("0.25"), Decimal("1.50"))
    rows = store.bucket_rows("repo-daily", keys[1].period_start, NOW)
    assert [(r["spent_usd"], r["reserved_usd"], r["calls"], r["runs"]) for r in rows] == [
        (Decimal("1.25"), Decimal("0.25"), 2, 2)]
    # the next reservation sees the open run's spend: 3 - 1.25 spent - 0.25 held = 1.50 left
    with pytest.raises(BudgetExceededError):
        store.reserve("next", keys, Decimal("1.51"), ttl_s=600, now=NOW)
    assert store.reserve("next", keys, Decimal("2"), ttl_s=600, now=NOW, clamp=True).amount_usd == Decimal("1.5")


def test_reserve_and_start_is_one_transaction_with_the_granted_amount_and_the_owner(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("other", keys, Decimal("2.5"), ttl_s=600, now=NOW)  # repo-daily ($3) has $0.50 left
    asked: list[Decimal] = []

    def run_for(amount: Decimal):
        asked.append(amount)
        return run("both", limits={"max_cost_usd": str(amount)})

    got = store.reserve_and_start("both", keys, Decimal("2"), ttl_s=600, now=NOW, run_for=run_for, clamp=True,
                                  owner=(4242, "99", "host-a"))
    assert got.amount_usd == Decimal("0.5") and asked == [Decimal("0.5")]  # the run is built from what was held
    started = store.get_run("both")
    assert started.status == "running" and started.limits["max_cost_usd"] == "0.5"
    assert store.running_runs_owned_on("host-a") == [("both", 4242, "99")]
    rows = store.bucket_rows("repo-daily", keys[1].period_start, NOW)
    assert [(r["reserved_usd"], r["runs"]) for r in rows] == [(Decimal("3.0"), 1)]  # counted once, as start_run


def test_reserve_and_start_starts_nothing_when_the_budget_does_not_fit_or_the_run_fails(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    with pytest.raises(BudgetExceededError):
        store.reserve_and_start("big", keys, Decimal("4"), ttl_s=600, now=NOW, run_for=lambda _: run("big"))
    assert store.get_run("big") is None and open_holds(store) == 0

    def broken(amount: Decimal):
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    with pytest.raises(UnicodeEncodeError):  # the hold is rolled back with the run it was for
        store.reserve_and_start("bad", keys, Decimal("1"), ttl_s=600, now=NOW, run_for=broken)
    store.start_run(run("dup"), keys)
    with pytest.raises(LedgerError, match="already in the ledger"):
        store.reserve_and_start("dup", keys, Decimal("1"), ttl_s=600, now=NOW, run_for=lambda _: run("dup"))
    assert store.get_run("bad") is None and open_holds(store) == 0
    assert statuses(store)["repo-daily"].reserved_usd == 0


def test_budget_status_command_counts_open_runs(store, ledger_url, tmp_path, capsys):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("open", keys, Decimal("2"), ttl_s=3600, now=NOW)
    store.start_run(run("open"), keys)
    store.record_call(call("open", 1, "1.5"))
    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\nbudgets:\n  - {name: repo-daily, scope: repo, period: day, limit_usd: 3}\n"
                      "rules:\n  - {name: all, decision: allow}\n")
    code, out, _ = run_cli(capsys, "budget", "status", "--policy", str(policy), "--ledger", ledger_url,
                           "--now", NOW.isoformat(), "--format", "json")
    assert code == 0, out
    daily = json.loads(out)["budgets"][0]  # every scope key of the budget, here the one run's repo
    assert (daily["scope_key"], daily["spent_usd"], daily["reserved_usd"], daily["remaining_usd"]) == (
        "acme/api", "1.5", "0.5", "1.0")


def test_an_abandoned_run_is_settled_by_its_expiry(store):
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("dead", keys, Decimal("3"), ttl_s=60, now=NOW)
    store.start_run(run("dead"), keys)
    store.record_call(call("dead", 1, "0.7"))  # then the run dies: no settle
    later = NOW + timedelta(seconds=61)
    daily = statuses(store, now=later)["repo-daily"]
    assert (daily.spent_usd, daily.reserved_usd) == (Decimal("0.7"), 0)  # spend kept, hold gone
    # the next run's reservation settles the dead one: its escrow lands in the rollup, once
    got = store.reserve("next", keys, Decimal("3"), ttl_s=60, now=later, clamp=True)
    assert got.amount_usd == Decimal("2.3")
    assert rollup_micros(store, "repo-daily") == 700_000
    store.settle("dead")  # its owner's clean-up comes late: nothing moves twice
    store.settle("next")
    daily = statuses(store, now=later)["repo-daily"]
    assert (daily.spent_usd, daily.reserved_usd) == (Decimal("0.7"), 0)
    assert rollup_micros(store, "repo-daily") == 700_000 and open_holds(store) == 0


def test_settle_and_expiry_racing_move_the_escrow_once(ledger_url):
    """The run's own settle and another run's reservation (which expires it) at the same moment."""
    keys = budget_keys(BUDGETS, CTX, NOW)
    later = NOW + timedelta(seconds=61)
    stores = [open_ledger(ledger_url) for _ in range(2)]
    try:
        for i in range(8):
            stores[0].reserve(f"dying-{i}", keys, Decimal("0.25"), ttl_s=60, now=NOW)
            stores[0].start_run(run(f"dying-{i}"), keys)
            stores[0].record_call(call(f"dying-{i}", 1, "0.125"))
            barrier = threading.Barrier(2)
            errors: list[BaseException] = []

            def settle(i=i, barrier=barrier, errors=errors):
                barrier.wait()
                try:
                    stores[0].settle(f"dying-{i}")
                except BaseException as exc:  # reported below
                    errors.append(exc)

            def reserve(i=i, barrier=barrier, errors=errors):
                barrier.wait()
                try:
                    stores[1].reserve(f"probe-{i}", keys, Decimal("0.01"), ttl_s=1, now=later)
                    stores[1].settle(f"probe-{i}")
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=settle), threading.Thread(target=reserve)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert not errors, errors
        spent = statuses(stores[0], now=later)["repo-daily"]
        assert (spent.spent_usd, spent.reserved_usd) == (Decimal("1.000"), 0)
        assert rollup_micros(stores[0], "repo-daily") == 1_000_000 and open_holds(stores[0]) == 0
    finally:
        for s in stores:
            s.close()


CRASHER = textwrap.dedent("""
    import sys, time
    from decimal import Decimal
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.budgets import budget_keys
    from tests.ledger.factories import BUDGETS, CTX, NOW, call, run

    store = open_ledger(sys.argv[1])
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("doomed", keys, Decimal("2"), ttl_s=600, now=NOW)
    store.start_run(run("doomed"), keys)
    store.record_call(call("doomed", 1, "0.42"))
    store.record_calls([call("doomed", 2, "0.08"), call("doomed", 3, "0.5")])
    print("written", flush=True)
    time.sleep(120)  # killed here, between calls, with the connection still open
""")


def test_a_run_killed_between_calls_keeps_its_spend_and_settles_once(ledger_url):
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, ledger_url], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline().strip() == "written"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    store = open_ledger(ledger_url)
    try:
        daily = statuses(store)["repo-daily"]
        assert (daily.spent_usd, daily.reserved_usd) == (Decimal("1.00"), Decimal("1.00"))  # open: escrow + hold
        store.settle("doomed")  # what close_stale_runs does for a run whose process died
        store.settle("doomed")
        daily = statuses(store)["repo-daily"]
        assert (daily.spent_usd, daily.reserved_usd) == (Decimal("1.00"), 0)
        assert store.get_run("doomed").cost_usd == Decimal("1.00")
        assert rollup_micros(store, "repo-daily") == 1_000_000 and open_holds(store) == 0
    finally:
        store.close()


@pytest.mark.slow
def test_64_processes_with_abandoned_runs_never_overspend_and_leave_no_hold(ledger_url):
    """Half the granted racers die without settling; their holds expire into spent, never over."""
    outcomes = run_racers(ledger_url, _race_abandon)
    assert not {i: d for i, (o, d) in outcomes.items() if o == "crashed"}
    granted = [i for i, (o, _) in outcomes.items() if o == "granted"]
    assert len(granted) == 10  # $1.00 / $0.10, whatever the order
    store = open_ledger(ledger_url)
    try:
        keys = budget_keys(TINY, CTX, NOW)
        tiny, org = store.budget_status(TINY, CTX, NOW)
        assert tiny.spent_usd == Decimal("1.00") == org.spent_usd and tiny.reserved_usd == 0
        assert open_holds(store) == sum(i % 2 for i in granted)  # the abandoned ones, still open
        with pytest.raises(BudgetExceededError):  # the open escrows still count
            store.reserve("after", keys, Decimal("0.000001"), ttl_s=60, now=NOW)
        later = NOW + timedelta(seconds=601)
        with pytest.raises(BudgetExceededError):  # expired: spend kept, nothing left either way
            store.reserve("after", keys, Decimal("0.000001"), ttl_s=60, now=later)
        assert open_holds(store) == 0
        tiny, org = store.budget_status(TINY, CTX, later)
        assert tiny.spent_usd == Decimal("1.00") == org.spent_usd and tiny.reserved_usd == 0
        assert sum(c.cost_usd for c in store.list_calls(limit=10_000)) == Decimal("1.00")
    finally:
        store.close()


def _race_abandon(url, index, barrier, results):
    from tests.ledger.race_worker import race

    race(url, index, barrier, results, abandon=True)
