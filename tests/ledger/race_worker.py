"""One racer of the concurrency tests (a module so `spawn` children can import it)."""

from __future__ import annotations

from decimal import Decimal


def race(url: str, index: int, barrier, results, abandon: bool = False, merged: bool = False) -> None:
    """Reserve $0.10 against a $1.00 daily budget and, when granted, spend exactly that in two calls.

    ``abandon``: odd racers die after their calls without settling (their hold is left to expire).
    ``merged``: reserve and start the run in one transaction (``reserve_and_start``, as `ci-guard run` does).
    """
    from ci_guard.errors import BudgetExceededError
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.budgets import budget_keys
    from tests.ledger.factories import CTX, NOW, call, run

    budgets = [{"name": "tiny", "scope": "repo", "period": "day", "limit_usd": "1.00"},
               {"name": "org", "scope": "org", "period": "month", "limit_usd": "100"}]
    run_id = f"racer-{index:02d}"
    try:
        store = open_ledger(url)
        keys = budget_keys(budgets, CTX, NOW)
        barrier.wait()
        try:
            if merged:
                store.reserve_and_start(run_id, keys, Decimal("0.10"), ttl_s=600, now=NOW,
                                        run_for=lambda _: run(run_id), owner=(index, None, "race-host"))
            else:
                store.reserve(run_id, keys, Decimal("0.10"), ttl_s=600, now=NOW)
        except BudgetExceededError as exc:
            results.put((index, "denied", str(exc)))
            return
        if not merged:
            store.start_run(run(run_id), keys)
        # spend exactly the reservation, in two calls, then settle
        store.record_call(call(run_id, 1, "0.04"))
        store.record_call(call(run_id, 2, "0.06"))
        if not (abandon and index % 2):
            store.settle(run_id)
        store.close()
        results.put((index, "granted", ""))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put((index, "crashed", f"{type(exc).__name__}: {exc}"))


def race_merged(url: str, index: int, barrier, results) -> None:
    race(url, index, barrier, results, merged=True)
