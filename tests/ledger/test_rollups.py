"""Run rollups (schema version 14): a finished run carries its calls' aggregates, so a month's report
reads the runs table; the figures must be exactly those the calls give, whatever the order of writes."""

from __future__ import annotations

from datetime import timedelta

from ci_guard.pricing.usage import Usage
from tests.ledger.factories import NOW, call, run

START, END = NOW.replace(day=1, hour=0, minute=0, second=0), NOW + timedelta(days=1)


def _figures(store) -> dict[str, tuple]:
    return {f.run_id: (f.calls, dict(f.models), f.context) for f in store.period_runs(START, END)}


def _rollups(store) -> dict[str, tuple]:
    rows = store._op(lambda tx: tx.all("SELECT run_id, rollup_calls, rollup_micros, rollup_model, rollup_ctx_first,"
                                       " rollup_ctx_mid, rollup_ctx_last FROM runs"), write=False)
    return {r[0]: tuple(r[1:]) for r in rows}


def _ctx(tokens: int) -> Usage:
    return Usage(input_tokens=tokens)


def _seed(store) -> None:
    store.start_run(run("one-model"))
    for seq, tokens in ((1, 100), (2, 250), (3, 400), (4, 900)):
        store.record_call(call("one-model", seq, "0.25", context_tokens=tokens, usage=_ctx(tokens)))
    store.start_run(run("two-models"))
    store.record_call(call("two-models", 1, "1.5", context_tokens=10, model_served="claude-haiku-4-5"))
    store.record_call(call("two-models", 2, "0.000001", context_tokens=30, model_served=None,
                           model_requested="gpt-5"))
    store.record_call(call("two-models", 3, "2", context_tokens=70, model_served="claude-haiku-4-5"))
    store.start_run(run("no-calls", decision="deny", status="denied"))
    store.start_run(run("still-open"))
    store.record_call(call("still-open", 1, "0.5", context_tokens=5))


def test_a_finished_run_gets_its_rollup_and_the_report_reads_it(store):
    _seed(store)
    unrolled = _figures(store)  # no run finished yet: every figure comes from the calls
    for run_id in ("one-model", "two-models", "no-calls"):
        store.finish_run(run_id, "completed", None, NOW + timedelta(minutes=5))
    rollups = _rollups(store)
    assert rollups["one-model"] == (4, 1_000_000, "claude-sonnet-4-5-20250929", 100, 250, 900)
    assert rollups["two-models"] == (3, 3_500_001, None, 10, 30, 70)  # several models: split on read
    assert rollups["no-calls"] == (0, 0, None, None, None, None)
    assert rollups["still-open"] == (None,) * 6
    assert _figures(store) == unrolled
    assert unrolled["two-models"] == (3, {"claude-haiku-4-5": [2, 3_500_000], "gpt-5": [1, 1]}, (10, 30, 70))
    assert unrolled["one-model"] == (4, {"claude-sonnet-4-5-20250929": [4, 1_000_000]}, (100, 250, 900))
    assert unrolled["no-calls"] == (0, {}, None)


def test_a_call_recorded_after_the_finish_voids_the_rollup(store):
    _seed(store)
    store.finish_run("one-model", "completed", None, NOW + timedelta(minutes=5))
    # a spooled call replayed after the run was finished (ci_guard.meter.recorder does this)
    store.record_call(call("one-model", 5, "1", context_tokens=2000, model_served="claude-haiku-4-5"))
    assert _rollups(store)["one-model"][0] is None  # no rollup: the report reads the calls
    figures = _figures(store)
    models = {"claude-sonnet-4-5-20250929": [4, 1_000_000], "claude-haiku-4-5": [1, 1_000_000]}
    assert figures["one-model"] == (5, models, (100, 400, 2000))
    store.finish_run("one-model", "completed", None, NOW + timedelta(minutes=6))  # finished again: rolled up
    assert _rollups(store)["one-model"][0] == 5
    assert _figures(store) == figures


def test_history_loaded_in_bulk_is_rolled_up(store):
    from ci_guard.ledger.records import RunRecord

    runs = [RunRecord(run_id=f"h-{i}", started_at=NOW, repo="acme/api", turns=2, cost_usd=call("x", 1, "0.5").cost_usd
                      * 2) for i in range(3)]
    calls = [call(f"h-{i}", seq, "0.5", at=NOW, context_tokens=seq * 10) for i in range(3) for seq in (1, 2)]
    store.load_history(runs, calls)
    assert {k: v for k, v in _rollups(store).items()} == {
        f"h-{i}": (2, 1_000_000, "claude-sonnet-4-5-20250929", 10, 10, 20) for i in range(3)}
    assert _figures(store)["h-1"] == (2, {"claude-sonnet-4-5-20250929": [2, 1_000_000]}, (10, 10, 20))


def test_a_report_mixing_rolled_up_and_open_runs_matches_one_from_calls_only(store):
    """Most runs rolled up, one not: the per-run path; then none: the one-pass path. Same figures."""
    _seed(store)
    for i in range(6):
        store.start_run(run(f"extra-{i}"))
        store.record_call(call(f"extra-{i}", 1, "0.1", context_tokens=i))
        store.finish_run(f"extra-{i}", "completed", None, NOW)
    store.finish_run("one-model", "completed", None, NOW)
    store.finish_run("two-models", "completed", None, NOW)
    mixed = _figures(store)
    store._op(lambda tx: tx.run("UPDATE runs SET rollup_calls = NULL"))
    assert _figures(store) == mixed
