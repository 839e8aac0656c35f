"""64 processes race to reserve and spend against one small budget, on each backend.

Each racer reserves $0.10 against a $1.00 daily budget and, when granted, spends exactly that.
No more than ten can ever be granted; the rest must get a clear BudgetExceededError; every granted
call must be in the ledger, and the rollup must equal the sum of the calls.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from decimal import Decimal

import pytest

from ci_guard.ledger import open_ledger
from ci_guard.ledger.budgets import budget_keys
from tests.ledger.factories import CTX, NOW
from tests.ledger.race_worker import race, race_merged

RACERS = 64
# Fresh interpreters, as with `spawn` (no connection or lock inherited from pytest), but forked
# from one server that has imported the ledger once: 64 cold starts would cost ~30 s on 2 cores.
PRELOAD = ["ci_guard.ledger.sqlite", "ci_guard.ledger.postgres", "ci_guard.ledger.budgets",
           "tests.ledger.factories", "tests.ledger.race_worker"]


def racer_context() -> mp.context.BaseContext:
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def run_racers(ledger_url: str, target: Callable[..., None]) -> dict[int, tuple[str, object]]:
    """Start RACERS processes of ``target(ledger_url, index, barrier, results)`` released together by
    a barrier; return each racer's reported ``(outcome, detail)`` by index."""
    open_ledger(ledger_url).close()  # migrate once up front, as `ci-guard ledger migrate` would
    ctx = racer_context()
    barrier = ctx.Barrier(RACERS, timeout=240)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(ledger_url, i, barrier, results)) for i in range(RACERS)]
    for p in procs:
        p.start()
    outcomes: dict[int, tuple[str, object]] = {}
    for _ in range(RACERS):
        try:
            index, outcome, detail = results.get(timeout=300)
        except queue.Empty:
            pytest.fail(f"only {len(outcomes)} of {RACERS} racers reported")
        outcomes[index] = (outcome, detail)
    for p in procs:
        p.join(timeout=60)
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("target", [race, race_merged], ids=["reserve-then-start", "reserve-and-start"])
def test_64_processes_never_overspend(ledger_url, target):
    outcomes = run_racers(ledger_url, target)

    crashed = {i: d for i, (o, d) in outcomes.items() if o == "crashed"}
    assert not crashed, crashed
    granted = sorted(i for i, (o, _) in outcomes.items() if o == "granted")
    denied = [d for o, d in outcomes.values() if o == "denied"]
    assert len(granted) == 10 and len(denied) == RACERS - 10
    assert all("budget 'tiny[acme/api]' cannot take $0.1" in d for d in denied)

    store = open_ledger(ledger_url)
    calls = store.list_calls(limit=10_000)
    assert len(calls) == 2 * len(granted)  # no row lost
    assert sum(c.cost_usd for c in calls) == Decimal("1.00")
    budgets = [{"name": "tiny", "scope": "repo", "period": "day", "limit_usd": "1.00"},
               {"name": "org", "scope": "org", "period": "month", "limit_usd": "100"}]
    tiny, org = store.budget_status(budgets, CTX, NOW)
    assert tiny.spent_usd == Decimal("1.00") == org.spent_usd  # rollups match the calls exactly
    assert tiny.reserved_usd == 0  # everything settled
    assert {r.run_id for r in store.list_runs(limit=100)} == {f"racer-{i:02d}" for i in granted}
    assert len(budget_keys(budgets, CTX, NOW)) == 2
    store.close()
