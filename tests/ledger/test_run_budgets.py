"""Budgets bind every metered run, on SQLite and PostgreSQL (issue 10, items 2 and 3).

The path a user takes: `run_agent` (what `ci-guard run` calls) with a real child process calling the
simulator through the proxy; what the simulator served is priced independently of the ledger.
"""

from __future__ import annotations

import os
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.meter.runner import EXIT_CAP_STOPPED, EXIT_POLICY_REFUSED, RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.pricing.normalize import from_anthropic
from ci_guard.simulator.server import run_simulator

KEY = "sk-ant-api03-budget-binding-test-key-0123456789"
MODEL = "claude-haiku-4-5"

# An agent that never stops asking: 2048 output tokens a call, until the proxy refuses it.
GREEDY = textwrap.dedent("""
    import os, httpx
    h = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": "2023-06-01"}
    for i in range(40):
        r = httpx.post(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", headers=h, timeout=30,
                       json={"model": "claude-haiku-4-5", "max_tokens": 2048,
                             "messages": [{"role": "user", "content": "call %d" % i}]})
        if r.status_code != 200:
            raise SystemExit(0)
""")


def _policy(tmp_path: Path, budgets: list[str], limits: str = "{max_turns: 50}", teams: str = "") -> str:
    path = tmp_path / "policy.yml"
    lines = ["version: 1", f"models: {{small: {MODEL}}}", teams, "budgets:", *(f"  - {b}" for b in budgets),
             "defaults:", "  model: small", f"  limits: {limits}", "rules:", "  - {name: allow, decision: allow}"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _request(policy: str, ledger_url: str, sim, command: list[str], **ctx) -> RunRequest:
    context = RunContext(**{"platform": "local", "repo": "acme/web", "org": "acme", "actor": "alice",
                            "agent": "greedy", **ctx})
    return RunRequest(
        policy_path=policy, context=context, command=command, ledger_url=ledger_url, preset="none",
        upstreams=Upstreams(anthropic=sim.url, anthropic_api_key=KEY), quiet=True,
        environ={**os.environ, "ANTHROPIC_API_KEY": KEY}, grace_s=0.5, kill_after_s=2)


def _served_usd(served: list[dict]) -> Decimal:
    """What the upstream billed, priced from its own usage records, not from the ledger."""
    price = load_catalog().lookup(MODEL)
    return sum((cost(from_anthropic(r["usage"]), price).total_usd for r in served if r["usage"]), Decimal(0))


def test_three_greedy_runs_never_get_more_than_the_budget_without_max_cost(tmp_path, ledger_url):
    policy = _policy(tmp_path, ["{name: org-monthly, scope: org, period: month, limit_usd: 0.03}"])
    outcomes = []
    with run_simulator("growing-context", api_key=KEY) as sim:
        for _ in range(3):
            outcomes.append(run_agent(_request(policy, ledger_url, sim, [sys.executable, "-c", GREEDY])))
        served = _served_usd(sim.served)
    assert Decimal("0.02") < served <= Decimal("0.03")  # the budget was used, never passed
    first = outcomes[0]
    assert first.summary.status == "stopped" and first.exit_code == EXIT_CAP_STOPPED
    assert first.summary.stop_reason == "max_cost"
    assert first.summary.decision["limits"]["max_cost_usd"] == "0.030000"  # the budget became the run's cap
    assert any("org-monthly[acme]" in note for note in first.summary.decision["notes"])
    store = open_ledger(ledger_url)
    try:
        runs = store.list_runs()
        status = store.budget_status(_budgets(policy), _ctx(), datetime.now(UTC))[0]
    finally:
        store.close()
    assert sum((r.cost_usd for r in runs), Decimal(0)) == served == status.spent_usd
    assert status.reserved_usd == 0  # every reservation was released
    # Later runs get only the crumbs left (and are stopped by that cap) or are refused, saying why.
    for later in outcomes[1:]:
        if later.summary.status == "denied":
            assert later.exit_code == EXIT_POLICY_REFUSED
            assert later.summary.decision["rule"] == "budget:org-monthly[acme]"
            assert "nothing left" in later.summary.decision["reason"]
        else:
            assert later.summary.stop_reason == "max_cost" and later.exit_code == EXIT_CAP_STOPPED
            assert Decimal(later.summary.decision["limits"]["max_cost_usd"]) <= Decimal("0.03") - first.summary.cost_usd


def test_a_spent_budget_denies_the_run_and_names_the_budget(tmp_path, ledger_url):
    policy = _policy(tmp_path, ["{name: org-monthly, scope: org, period: month, limit_usd: 0.01}",
                               "{name: repo-daily, scope: repo, period: day, limit_usd: 5}"])
    marker = tmp_path / "ran"
    with run_simulator("growing-context", api_key=KEY) as sim:
        spent = run_agent(_request(policy, ledger_url, sim, [sys.executable, "-c", GREEDY]))
        assert spent.summary.stop_reason == "max_cost" and spent.summary.cost_usd <= Decimal("0.01")
        # A tiny remainder is still "something left"; spend the rest exactly to make the budget empty.
        _spend_rest(ledger_url, policy)
        denied = run_agent(_request(policy, ledger_url, sim,
                                    [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]))
    assert denied.exit_code == EXIT_POLICY_REFUSED and denied.summary.status == "denied"
    assert denied.summary.decision["rule"] == "budget:org-monthly[acme]"
    assert "budget org-monthly[acme] has nothing left" in denied.summary.decision["reason"]
    assert not marker.exists()


def test_max_cost_above_what_is_left_is_clamped_or_denied_as_the_policy_says(tmp_path, ledger_url):
    budgets = ["{name: org-monthly, scope: org, period: month, limit_usd: 0.02}"]
    clamp = _policy(tmp_path, budgets, "{max_turns: 50, max_cost_usd: 5}")
    with run_simulator("growing-context", api_key=KEY) as sim:
        # on_budget_exceeded: deny (the default): a $5 worst case does not fit a $0.02 budget
        denied = run_agent(_request(clamp, ledger_url, sim, [sys.executable, "-c", GREEDY]))
        assert denied.summary.status == "denied" and "does not fit" in denied.summary.decision["reason"]
        text = Path(clamp).read_text() + "enforcement: {on_budget_exceeded: clamp}\n"
        Path(clamp).write_text(text)
        clamped = run_agent(_request(clamp, ledger_url, sim, [sys.executable, "-c", GREEDY]))
        served = _served_usd(sim.served)
    assert clamped.summary.decision["limits"]["max_cost_usd"] == "0.020000"
    assert served <= Decimal("0.02") and clamped.summary.cost_usd == served


def test_the_team_from_teams_is_charged_exactly_the_runs_cost(tmp_path, ledger_url):
    teams = "teams:\n  payments: {members: [Alice], repos: ['acme/pay-*']}\n  web: {repos: ['acme/web']}"
    budgets = ["{name: team-monthly, scope: team, period: month, limit_usd: 1200}",
               "{name: repo-daily, scope: repo, period: day, limit_usd: 40}"]
    policy = _policy(tmp_path, budgets, "{max_turns: 3, max_cost_usd: 1}", teams)
    agent = [sys.executable, "-m", "ci_guard.demo.agent"]
    with run_simulator("tool-loop", api_key=KEY) as sim:
        by_member = run_agent(_request(policy, ledger_url, sim, agent, actor="alice"))
        by_repo = run_agent(_request(policy, ledger_url, sim, agent, actor="bob", repo="acme/pay-api"))
        served = _served_usd(sim.served)
    assert by_member.summary.cost_usd > 0 and by_repo.summary.cost_usd > 0
    store = open_ledger(ledger_url)
    try:
        team = store.budget_status(_budgets(policy), _ctx(team="payments"), datetime.now(UTC))[0]
        web = store.budget_status(_budgets(policy), _ctx(team="web"), datetime.now(UTC))[0]
        run = store.get_run(by_member.summary.run_id)
        rows = {r["scope_key"]: r for r in store.bucket_rows("team-monthly", team.period_start, datetime.now(UTC))}
    finally:
        store.close()
    assert run.team == "payments"
    assert team.spent_usd == by_member.summary.cost_usd + by_repo.summary.cost_usd == served
    assert team.reserved_usd == 0 and web.spent_usd == 0
    assert rows["payments"]["runs"] == 2  # reported like any other scope


def _budgets(policy: str):
    from ci_guard.policy.decide import load_policy

    return load_policy(policy).budgets


def _ctx(**kw) -> RunContext:
    return RunContext(**{"platform": "local", "repo": "acme/web", "org": "acme", "actor": "alice", **kw})


def _spend_rest(ledger_url: str, policy: str) -> None:
    """Record a call that spends exactly what the org budget has left (another job's spend)."""
    from ci_guard.ledger.budgets import budget_keys
    from ci_guard.ledger.records import CallRecord, RunRecord
    from ci_guard.pricing.usage import Usage

    now = datetime.now(UTC)
    store = open_ledger(ledger_url)
    try:
        status = store.budget_status(_budgets(policy), _ctx(), now)[0]
        keys = budget_keys(_budgets(policy), _ctx(), now)
        store.start_run(RunRecord(run_id="run_other", started_at=now, decision="allow", status="running",
                                  org="acme", repo="acme/web"), keys)
        store.record_call(CallRecord("run_other", 1, now, now, "anthropic", "messages", MODEL, MODEL,
                                     Usage(input_tokens=1), status.remaining_usd))
        store.finish_run("run_other", "completed", None, now)
    finally:
        store.close()
