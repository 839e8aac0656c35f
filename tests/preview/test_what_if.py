"""`what-if` against a ledger of real history: runs of the scripted agent through `ci-guard run`
(the runner, proxy and simulator) across repositories, teams, agents and models, some stopped by
caps and one retry storm. Each test changes one thing in the policy and checks the exact runs and
dollars reported against figures computed here from the recorded calls."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ci_guard.context.model import RunContext
from ci_guard.demo.rehearsal import DEMO_KEY
from ci_guard.ledger import open_ledger
from ci_guard.ledger.records import CallRecord, RunRecord
from ci_guard.ledger.sqlstore import to_micros
from ci_guard.meter.runner import RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.preview.whatif import WhatIf, what_if
from ci_guard.pricing.catalog import load_catalog
from ci_guard.pricing.cost import cost
from ci_guard.simulator.server import run_simulator
from tests.helpers import require
from tests.ledger.conftest import PG_SERVER, pg_available, pg_url

POLICY = """\
version: 1
models: {small: claude-haiku-4-5, large: claude-sonnet-4-5}
teams:
  web: {repos: ["acme/web*"]}
  data: {repos: ["acme/data*"]}
budgets:
  - {name: org-monthly, scope: org, period: month, limit_usd: 100, alert_at: ["50%"]}
  - {name: team-monthly, scope: team, period: month, limit_usd: TEAM_LIMIT}
defaults:
  model: small
  limits: {max_turns: 12, max_cost_usd: 2.00, max_runtime: 15m, max_identical_retries: 4, max_tool_calls: 40}
rules:
  - name: skip-drafts
    when: {draft: true}
    decision: skip
    reason: drafts wait
  - name: review
    when: {agent: pr-review}
    decision: allow
    model: large
    limits: {max_cost_usd: REVIEW_CAP}
  - name: repair
    when: {agent: test-repair}
    decision: allow
    model: small
    limits: {max_turns: REPAIR_TURNS}
  - name: docs
    when: {agent: docs-bot}
    decision: allow
  - name: everything-else
    decision: deny
    reason: no rule allows this
"""
BASE = {"TEAM_LIMIT": "50", "REVIEW_CAP": "2.00", "REPAIR_TURNS": "6"}

# (repo, agent, scenario, extra agent args, context changes)
RUNS: list[tuple[str, str, Any, list[str], dict[str, Any]]] = [
    ("acme/web", "pr-review", {"turns": 3}, ["--stream"], {}),
    ("acme/data-lake", "pr-review", {"turns": 5}, [], {}),
    ("acme/web", "test-repair", "endless-loop", [], {}),
    ("acme/data-lake", "docs-bot", "retry-storm", ["--retries", "50"], {}),
    ("acme/web", "docs-bot", {"turns": 2}, [], {}),
    ("acme/web", "pr-review", {"turns": 4, "grow_tokens": 400}, [], {}),
    ("acme/web", "pr-review", {"turns": 2}, [], {"draft": True}),
    ("acme/data-lake", "mystery-bot", {"turns": 1}, [], {}),
    ("acme/data-lake", "test-repair", "endless-loop", [], {}),
]


def policy_text(**changes: str) -> str:
    text = POLICY
    for key, value in {**BASE, **changes}.items():
        text = text.replace(key, value)
    return text


@dataclass
class History:
    url: str
    policy: Path
    runs: list[RunRecord]  # in start order
    calls: dict[str, list[CallRecord]]
    since: datetime
    until: datetime
    tmp: Path

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    def run(self, policy: str, baseline: str | None = None) -> WhatIf:
        store = open_ledger(self.url)
        try:
            return what_if(store, policy, baseline, self.since, self.until)
        finally:
            store.close()

    def made(self, run_id: str) -> list[CallRecord]:
        return [c for c in self.calls[run_id] if c.status != "refused"]

    def micros(self, run: RunRecord) -> int:
        return to_micros(run.cost_usd)


def _record(url: str, policy: Path, tmp: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "OPENAI_", "CI_GUARD_"))}
    for i, (repo, agent, scenario, args, changes) in enumerate(RUNS):
        ctx = RunContext(platform="github", repo=repo, org="acme", pr=100 + i, trigger="pull_request",
                         base_branch="main", head_branch=f"f{i}", actor=f"dev{i % 3}", draft=False, fork=False,
                         diff_lines=50, agent=agent, workflow=f"{agent}.yml", labels=[]).model_copy(update=changes)
        with run_simulator(scenario, api_key=DEMO_KEY) as sim:
            run_agent(RunRequest(
                policy_path=str(policy), context=ctx, command=[sys.executable, "-m", "ci_guard.demo.agent", *args],
                ledger_url=url, preset="none", quiet=True, environ=env,
                upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=DEMO_KEY,
                                    openai_api_key=DEMO_KEY),
                grace_s=1.0, kill_after_s=3.0))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def history(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    tmp = tmp_path_factory.mktemp(f"whatif-{request.param}")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp}/ledger.db"
    else:
        require(pg_available(), f"PostgreSQL is not reachable at {PG_SERVER}")
        schema = f"cig_whatif_{os.getpid()}_{secrets.token_hex(3)}"
        url = pg_url(schema)
    policy = tmp / "policy.yml"
    policy.write_text(policy_text(), encoding="utf-8")
    since = datetime.now(UTC) - timedelta(minutes=1)
    _record(url, policy, tmp)
    store = open_ledger(url)
    try:
        runs = sorted(store.list_runs(limit=100), key=lambda r: (r.started_at, r.run_id))
        calls = {r.run_id: store.list_calls(r.run_id) for r in runs}
    finally:
        store.close()
    assert len(runs) == len(RUNS)
    yield History(url, policy, runs, calls, since, datetime.now(UTC) + timedelta(minutes=1), tmp)
    if schema is not None:
        import psycopg

        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_the_history_is_realistic(history: History) -> None:
    by = {(r.agent, r.repo): r for r in history.runs}
    assert {r.status for r in history.runs} >= {"completed", "stopped", "skipped", "denied"}
    assert by[("test-repair", "acme/web")].stop_reason == "max_turns"
    assert by[("docs-bot", "acme/data-lake")].stop_reason == "retry_storm"
    assert {r.model for r in history.runs if r.decision == "allow"} == {"claude-sonnet-4-5", "claude-haiku-4-5"}
    assert {r.team for r in history.runs} == {"web", "data"}
    assert all(r.inputs is not None for r in history.runs)


def test_an_unchanged_policy_reports_zero_change_exactly(history: History) -> None:
    for result in (history.run(str(history.policy)), history.run(str(history.policy), str(history.policy))):
        assert result.unchanged and result.delta_micros == 0 and result.runs == len(RUNS)
        assert result.before_micros == sum(history.micros(r) for r in history.runs)
        assert result.approximated == 0
        assert all(b["before_micros"] == b["after_micros"] for b in result.budgets)


def test_the_garbage_collector_is_paused_only_while_replaying(history: History) -> None:
    import gc

    assert gc.isenabled()
    history.run(str(history.policy), str(history.policy))
    assert gc.isenabled()  # back on after the replay

    class Unreadable:  # a ledger that fails mid-replay
        def runs_between(self, start: datetime, end: datetime) -> list[RunRecord]:
            raise RuntimeError("ledger gone")

    with pytest.raises(RuntimeError, match="ledger gone"):
        what_if(Unreadable(), str(history.policy), None, history.since, history.until)
    assert gc.isenabled()  # and after a replay that failed
    gc.disable()
    try:
        history.run(str(history.policy))
        assert not gc.isenabled()  # a caller that paused it keeps it paused
    finally:
        gc.enable()


def test_a_deny_rule_refuses_the_runs_it_matches(history: History) -> None:
    text = policy_text().replace("rules:\n", "rules:\n  - name: no-data\n    when: {team: data}\n"
                                            "    decision: deny\n", 1)
    result = history.run(history.write("deny.yml", text), str(history.policy))
    expected = [r for r in history.runs if r.team == "data" and r.decision == "allow"]
    assert [c.run.run_id for c in result.newly_refused] == [r.run_id for r in expected]
    assert result.delta_micros == -sum(history.micros(r) for r in expected)
    assert all(c.after.rule == "no-data" for c in result.newly_refused)
    # the data run the old policy denied is now denied by the new rule: a change of rule, not of decision
    moved = [(k, n) for k, n in result.transitions.items() if k[0] == "deny"]
    assert moved == [(("deny", "everything-else", "deny", "no-data"), 1)]
    assert not result.stopped and not result.newly_allowed
    json.dumps(result.as_json())


def test_a_lower_max_turns_stops_runs_where_it_would_have(history: History) -> None:
    result = history.run(history.write("turns.yml", policy_text(REPAIR_TURNS="3")))
    repair = [r for r in history.runs if r.agent == "test-repair"]
    expected_saving = 0
    for r in repair:
        made = history.made(r.run_id)
        turn_calls = [c for c in made if c.is_turn]
        assert len(turn_calls) == 6  # the old cap
        kept = made[:made.index(turn_calls[2]) + 1]  # up to the third turn
        expected_saving += history.micros(r) - sum(to_micros(c.cost_usd) for c in kept)
    assert sorted(c.run.run_id for c in result.stopped) == sorted(r.run_id for r in repair)
    assert all(c.after.stop_reason == "max_turns" and c.after.calls == 3 for c in result.stopped)
    assert result.delta_micros == -expected_saving < 0
    assert not result.newly_refused and not result.repriced


def test_a_lower_cost_cap_stops_at_the_call_that_reaches_it(history: History) -> None:
    review = [r for r in history.runs if r.agent == "pr-review" and r.decision == "allow"]
    biggest = max(review, key=lambda r: r.cost_usd)
    cap = (biggest.cost_usd / 2).quantize(Decimal("0.000001"))
    result = history.run(history.write("cap.yml", policy_text(REVIEW_CAP=str(cap))))
    cap_micros, saving, stopped = to_micros(cap), 0, []
    for r in review:
        total = history.micros(r)
        if total <= cap_micros:
            continue
        # the call that brings the spend to the cap is clamped (on_cost_cap: clamp): the run costs the cap
        spent = 0
        for n, call in enumerate(history.made(r.run_id), 1):
            spent += to_micros(call.cost_usd)
            if spent >= cap_micros:
                stopped.append((r.run_id, n))
                break
        saving += total - cap_micros
    got = sorted((c.run.run_id, c.after.calls) for c in result.stopped)
    assert got == sorted(stopped) and biggest.run_id in dict(got)
    assert all(c.after.cost_micros == cap_micros and c.after.stop_reason == "max_cost" for c in result.stopped)
    assert result.delta_micros == -saving


def test_a_smaller_model_reprices_recorded_tokens_as_an_estimate(history: History) -> None:
    text = policy_text().replace("    model: large\n", "    model: small\n")
    result = history.run(history.write("model.yml", text))
    haiku = load_catalog().lookup("claude-haiku-4-5")
    assert haiku is not None
    review = [r for r in history.runs if r.agent == "pr-review" and r.decision == "allow"]
    expected = 0
    for r in review:
        repriced = sum(to_micros(cost(c.usage, haiku.for_call(c.service_tier, None)).total_usd)
                       for c in history.made(r.run_id))
        expected += repriced - history.micros(r)
    assert sorted(c.run.run_id for c in result.repriced) == sorted(r.run_id for r in review)
    assert all(c.after.repriced and c.after.model == "claude-haiku-4-5" for c in result.repriced)
    assert result.delta_micros == expected < 0
    assert result.as_json()["models"]["estimate"] is True


def test_a_smaller_budget_denies_the_runs_that_no_longer_fit(history: History) -> None:
    allowed = [r for r in history.runs if r.decision == "allow"]
    first = history.micros(allowed[0])
    # every allowed run reserves max_cost_usd 2.00: the first fits, none after it (on_budget_exceeded: deny)
    limit = Decimal(2) + Decimal(first) / 2 / 1_000_000
    text = policy_text().replace("limit_usd: 100, alert_at", f"limit_usd: {limit}, alert_at")
    result = history.run(history.write("budget.yml", text))
    assert [c.run.run_id for c in result.newly_refused] == [r.run_id for r in allowed[1:]]
    assert all(c.after.rule == "budget:org-monthly[acme]" for c in result.newly_refused)
    assert result.delta_micros == -sum(history.micros(r) for r in allowed[1:])
    bucket = next(b for b in result.budgets if b["budget"] == "org-monthly")
    assert bucket["after_micros"] == first and bucket["before_micros"] == sum(history.micros(r) for r in allowed)
    # the 50% alert: fired in the recorded history against the smaller limit, not under the proposal
    assert bucket["alerts_after"] == [] and (bucket["alerts_before"] != []) == (
        bucket["before_micros"] >= to_micros(limit / 2))


def test_runs_without_stored_inputs_are_approximated(history: History, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    store = open_ledger(url)
    try:
        old = RunRecord(run_id="old-1", started_at=history.since + timedelta(seconds=5), repo="acme/web",
                        org="acme", agent="docs-bot", workflow="docs.yml", decision="allow", status="completed",
                        model="claude-haiku-4-5", rule="docs", limits={"max_turns": 99})
        store.start_run(old)
    finally:
        store.close()
    store = open_ledger(url)
    try:
        result = what_if(store, str(history.policy), None, history.since, history.until)
    finally:
        store.close()
    assert result.runs == 1 and result.approximated == 1


def test_the_cli_reports_json_and_applies_the_thresholds(history: History) -> None:
    text = policy_text().replace("rules:\n", "rules:\n  - name: no-data\n    when: {team: data}\n"
                                            "    decision: deny\n", 1)
    proposal = history.write("cli.yml", text)
    base = [sys.executable, "-m", "ci_guard", "what-if", "--policy", proposal, "--baseline", str(history.policy),
            "--ledger", history.url, "--since", history.since.isoformat(), "--until", history.until.isoformat()]
    proc = subprocess.run([*base, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    refused = [r for r in history.runs if r.team == "data" and r.decision == "allow"]
    assert data["decisions"]["newly_refused"] == len(refused)
    assert Decimal(data["spend"]["change_usd"]) == -sum((r.cost_usd for r in refused), Decimal(0))
    assert data["headline"].startswith(f"this change would have denied {len(refused)} of {len(RUNS)} runs")
    proc = subprocess.run([*base, "--fail-if-denies-more-than", str(len(refused) - 1)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1 and "would be denied" in proc.stderr
    proc = subprocess.run([*base, "--fail-if-denies-more-than", str(len(refused)),
                           "--fail-if-spend-increases-by", "0%"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    bad = history.write("bad.yml", "version: 1\nrules:\n  - name: x\n    decison: allow\n")
    out = history.tmp / "invalid.md"
    proc = subprocess.run([*base[:5], bad, *base[6:], "--format", "markdown", "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "bad.yml:4:5: rules[0].decison: unknown key" in proc.stderr
    assert "is not valid" in out.read_text() and "bad.yml:4:5" in out.read_text()
