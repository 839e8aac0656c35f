"""Imported usage is priced with the catalog and lands in the ledger as a not-enforced run."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.errors import PricingError
from ci_guard.importers import parse_usage_file
from ci_guard.importers.record import record_import
from ci_guard.ledger import open_ledger
from ci_guard.policy.decide import load_policy

ROOT = Path(__file__).resolve().parents[2]
CTX = RunContext(platform="github", repo="acme/app", org="acme", pr=7, agent="cursor-cli", actor="alice")


def _csv(tmp_path: Path, rows: str) -> str:
    path = tmp_path / "usage.csv"
    path.write_text("Date,Model,Input (w/ Cache Write),Input (w/o Cache Write),Cache Read,Output Tokens,Cost\n" + rows)
    return str(path)


def test_csv_import_is_priced_recorded_and_counts_against_budgets(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    path = _csv(tmp_path, "2026-11-28T10:00:00Z,claude-sonnet-4-5,1000,200,5000,300,$9.99\n")
    policy_path = str(ROOT / "policies" / "default.yml")
    summary = record_import(parse_usage_file("csv", path), ctx=CTX, policy=load_policy(policy_path),
                            policy_path=policy_path, ledger_url=url)
    # Sonnet 4.5 list price: 200*3 + 1000*3.75 + 5000*0.30 + 300*15 per million (the vendor's $9.99 is ignored)
    expected = Decimal("0.010350")
    assert summary.cost_usd == expected
    assert summary.enforced is False and summary.decision["rule"] == "import"
    store = open_ledger(url)
    try:
        run = store.get_run(summary.run_id)
        assert run is not None and run.enforced is False and run.status == "completed"
        assert run.repo == "acme/app" and run.pr == 7 and run.cost_usd == expected
        (call,) = store.list_calls(summary.run_id)
        assert call.usage.cache_write_tokens == 1000 and call.endpoint == "import"
        statuses = {b.name: b for b in store.budget_status(load_policy(policy_path).budgets, CTX,
                                                           run.started_at)}
        assert statuses["org-monthly"].spent_usd == expected  # imported spend uses up the budget
    finally:
        store.close()


def test_unknown_model_uses_the_vendor_cost_never_zero(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    path = _csv(tmp_path, "2026-11-28T10:00:00Z,cursor-secret-model,10,10,10,10,$0.42\n")
    summary = record_import(parse_usage_file("csv", path), ctx=CTX, policy=None, policy_path=None, ledger_url=url)
    assert summary.cost_usd == Decimal("0.42")


def test_unknown_model_without_vendor_cost_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "2026-11-28T10:00:00Z,cursor-secret-model,10,10,10,10,Included\n")
    with pytest.raises(PricingError, match="--price-as"):
        record_import(parse_usage_file("csv", path), ctx=CTX, policy=None, policy_path=None,
                      ledger_url=f"sqlite:///{tmp_path}/l.db")
    summary = record_import(parse_usage_file("csv", path), ctx=CTX, policy=None, policy_path=None,
                            ledger_url=f"sqlite:///{tmp_path}/l.db", price_as="claude-sonnet-4-5")
    assert summary.cost_usd == Decimal("0.000221")  # 10 x 22.05 per million = 0.0002205, half-up


def test_claude_code_import_matches_claude_codes_own_cost(tmp_path: Path) -> None:
    result = {"type": "result", "num_turns": 2, "session_id": "s", "total_cost_usd": 0.008886,
              "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 12, "outputTokens": 300,
                                                   "cacheReadInputTokens": 2000, "cacheCreationInputTokens": 1000}}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    imported = parse_usage_file("claude-code-json", str(path))
    summary = record_import(imported, ctx=CTX, policy=None, policy_path=None, ledger_url=f"sqlite:///{tmp_path}/l.db")
    assert summary.cost_usd == imported.reported_cost_usd == Decimal("0.008886")
    assert summary.turns == 2 and summary.session_id == "s"


def test_claude_code_import_charges_web_searches_like_claude_code(tmp_path: Path) -> None:
    # Claude Code's own total includes $0.01 per web search; so does the imported cost.
    result = {"type": "result", "num_turns": 3, "session_id": "s", "total_cost_usd": 0.038886,
              "modelUsage": {"claude-sonnet-4-5": {"inputTokens": 12, "outputTokens": 300,
                                                   "cacheReadInputTokens": 2000, "cacheCreationInputTokens": 1000,
                                                   "webSearchRequests": 3}}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    imported = parse_usage_file("claude-code-json", str(path))
    summary = record_import(imported, ctx=CTX, policy=None, policy_path=None, ledger_url=f"sqlite:///{tmp_path}/l.db")
    assert summary.cost_usd == imported.reported_cost_usd == Decimal("0.038886")
    assert summary.web_searches == 3 and summary.calls[0].web_searches == 3


def test_imported_calls_keep_their_time_and_provider(tmp_path: Path) -> None:
    """The ledger (and so reports, budgets' periods and the FOCUS export) dates imported usage when it
    happened, and names the provider that served it: the file's, else the catalog's for the model."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    path = _csv(tmp_path, "2026-11-28T10:00:00Z,claude-sonnet-4-5,10,10,10,10,$0.01\n"
                          "2026-11-29T08:30:00Z,gpt-5,10,10,10,10,$0.01\n"
                          "2026-11-29T09:00:00Z,cursor-secret-model,10,10,10,10,$0.01\n")
    summary = record_import(parse_usage_file("csv", path), ctx=CTX, policy=None, policy_path=None, ledger_url=url)
    store = open_ledger(url)
    try:
        run = store.get_run(summary.run_id)
        calls = store.list_calls(summary.run_id)
    finally:
        store.close()
    assert run is not None and run.started_at.isoformat() == "2026-11-28T10:00:00+00:00"
    assert [(c.started_at.isoformat(), c.provider) for c in calls] == [
        ("2026-11-28T10:00:00+00:00", "anthropic"), ("2026-11-29T08:30:00+00:00", "openai"),
        ("2026-11-29T09:00:00+00:00", "import")]  # an unknown model priced by its vendor cost
    from ci_guard.report.focus import focus_rows

    rows = list(focus_rows([(c, run) for c in calls]))
    assert [r["ProviderName"] for r in rows][:2] == ["Anthropic", "OpenAI"]
    assert rows[0]["ChargePeriodStart"].startswith("2026-11-28T10:00")
