"""A call's service tier and geography survive the ledger on both backends, so a row can be re-priced
by hand with `ci-guard cost` (issue 11: fast mode, regional processing)."""

from __future__ import annotations

import json

from ci_guard.pricing.usage import Usage
from ci_guard.report.history import run_summary
from tests.helpers import run_cli
from tests.ledger.factories import call, run


def test_a_fast_mode_call_in_the_us_and_a_regional_call_reprice_from_their_ledger_rows(store, ledger_url, capsys):
    store.start_run(run("r-geo"))
    usage = Usage(input_tokens=1000, output_tokens=100)
    # Opus 5 fast in the US: (1,000 x 5 + 100 x 25) / 1M x 2 x 1.1; gpt-5.5 via eu.api.openai.com:
    # (1,000 x 5 + 100 x 30) / 1M x 1.1
    store.record_call(call("r-geo", 1, "0.0165", usage=usage, model_served="claude-opus-5", provider="anthropic",
                           service_tier="fast", inference_geo="us"))
    store.record_call(call("r-geo", 2, "0.0088", usage=usage, model_served="gpt-5.5", provider="openai",
                           service_tier="default", inference_geo="eu"))
    store.record_call(call("r-geo", 3, "0.008", usage=usage, model_served="gpt-5.5", provider="openai"))
    calls = store.list_calls("r-geo")
    assert [(c.service_tier, c.inference_geo) for c in calls] == [("fast", "us"), ("default", "eu"), (None, None)]
    assert [c["inference_geo"] for c in run_summary(store.get_run("r-geo"), calls).to_json()["calls"]] == \
        ["us", "eu", None]
    code, out, _ = run_cli(capsys, "ledger", "calls", "--run", "r-geo", "--ledger", ledger_url, "--format", "json")
    assert code == 0
    rows = json.loads(out) if out.lstrip().startswith("[") else json.loads(out)["calls"]
    for row in rows:
        args = ["cost", "--model", row["model_served"], "--input", str(row["tokens"]["input"]),
                "--output", str(row["tokens"]["output"]), "--format", "json"]
        args += ["--service-tier", row["service_tier"]] if row["service_tier"] else []
        args += ["--inference-geo", row["inference_geo"]] if row["inference_geo"] else []
        code, priced, _ = run_cli(capsys, *args)
        assert code == 0 and json.loads(priced)["total_usd"] == row["cost_usd"], row
