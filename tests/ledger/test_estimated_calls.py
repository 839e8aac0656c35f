"""Estimated calls and one-hour cache writes survive the ledger on both backends (issue 11 #3, #12)."""

from __future__ import annotations

from decimal import Decimal

from ci_guard.pricing.usage import Usage
from ci_guard.report.history import run_summary
from tests.ledger.factories import call, run


def test_estimated_flag_and_one_hour_writes_round_trip(store):
    store.start_run(run("r-est"))
    store.record_call(call("r-est", 1, "0.010750", estimated=True,
                           usage=Usage(input_tokens=600, output_tokens=1000)))
    store.record_call(call("r-est", 2, "0.0123", usage=Usage(input_tokens=10, cache_write_tokens=3000,
                                                             cache_write_1h_tokens=2000, output_tokens=5)))
    calls = store.list_calls("r-est")
    assert [c.estimated for c in calls] == [True, False]
    assert calls[1].usage.cache_write_1h_tokens == 2000
    summary = run_summary(store.get_run("r-est"), calls)
    assert summary.estimated_calls == 1 and summary.cost_usd == Decimal("0.02305")
    data = summary.to_json()
    assert data["tokens"]["cache_write_1h"] == 2000 and data["calls"][0]["estimated"] is True
    assert data["calls"][1]["tokens"]["cache_write_1h"] == 2000


def test_ledger_calls_json_carries_the_estimated_flag_and_one_hour_writes(store, ledger_url, capsys):
    import json

    from tests.helpers import run_cli

    store.start_run(run("r-json"))
    store.record_call(call("r-json", 1, "0.5", estimated=True, usage=Usage(input_tokens=10, cache_write_tokens=300,
                                                                          cache_write_1h_tokens=200)))
    code, out, _ = run_cli(capsys, "ledger", "calls", "--run", "r-json", "--ledger", ledger_url, "--format", "json")
    assert code == 0
    (row,) = json.loads(out) if out.lstrip().startswith("[") else json.loads(out)["calls"]
    assert row["estimated"] is True and row["tokens"]["cache_write_1h"] == 200 and row["cost_usd"] == "0.500000"
