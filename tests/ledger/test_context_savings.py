"""Migration 0007: a call's context-policy changes and savings are stored and summed per run (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.pricing.usage import Usage


def _call(run_id: str, seq: int, saved: str, context: dict | None) -> CallRecord:
    now = datetime.now(UTC)
    return CallRecord(run_id=run_id, seq=seq, started_at=now, ended_at=now, provider="anthropic",
                      endpoint="messages", model_requested="claude-sonnet-4-5", model_served="claude-haiku-4-5",
                      usage=Usage(input_tokens=100, output_tokens=10), cost_usd=Decimal("0.001"),
                      context=context, context_saved_usd=Decimal(saved))


def test_context_changes_and_savings_round_trip(store) -> None:
    run = RunRecord(run_id="run_ctx", started_at=datetime.now(UTC), decision="allow", status="running")
    store.start_run(run)
    changes = {"pruned_tokens": 52000, "breakpoints_added": 3, "saved_usd": "0.150000", "method": "estimate"}
    store.record_call(_call("run_ctx", 1, "0.15", changes))
    store.record_call(_call("run_ctx", 2, "-0.004", {"breakpoints_added": 4, "saved_usd": "-0.004"}))
    store.record_call(_call("run_ctx", 3, "0", None))
    calls = store.list_calls("run_ctx")
    assert calls[0].context == changes and calls[0].context_saved_usd == Decimal("0.15")
    assert calls[2].context is None and calls[2].context_saved_usd == 0
    assert store.get_run("run_ctx").context_saved_usd == Decimal("0.146")


def test_focus_rows_tag_the_saving_and_the_dashboard_sums_it(tmp_path) -> None:
    import json
    from datetime import timedelta

    from ci_guard.ledger import open_ledger
    from ci_guard.report.dashboard import build_dashboard, render_dashboard
    from ci_guard.report.finops import Period
    from ci_guard.report.focus import focus_row

    run = RunRecord(run_id="run_ctx", started_at=datetime.now(UTC), decision="allow", status="completed")
    changed = _call("run_ctx", 1, "0.15", {"pruned_tokens": 5000, "route": "side", "method": "estimate"})
    plain = _call("run_ctx", 2, "0", None)
    tags = json.loads(focus_row(changed, run)["Tags"])
    assert tags["ci-guard/context_saved_usd"] == "0.150000"
    assert tags["ci-guard/context_changes"] == "pruned_tokens,route"
    assert tags["ci-guard/context_saving_method"] == "estimate"
    assert "ci-guard/context_saved_usd" not in json.loads(focus_row(plain, run)["Tags"])
    store = open_ledger(f"sqlite:///{tmp_path}/l.db")
    try:
        store.start_run(run)
        store.record_calls([changed, plain])
        start, end = run.started_at - timedelta(days=1), run.started_at + timedelta(days=1)
        board = build_dashboard(store.period_runs(start, end), [], Period(start, end))
    finally:
        store.close()
    assert board.context_saved == Decimal("0.15") and board.total_usd == Decimal("0.002")
    assert "Saved by context policy" in render_dashboard(board)
