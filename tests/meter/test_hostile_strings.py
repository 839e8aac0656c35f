"""Issue 12 #1: agent-controlled strings (lone surrogates, non-UTF-8 headers and context values)
never keep a served call out of the ledger, its budgets or the summary; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ci_guard.context.model import RunContext
from ci_guard.ledger import open_ledger
from ci_guard.meter.runner import RunRequest, run_agent
from ci_guard.meter.upstreams import Upstreams
from ci_guard.simulator.server import run_simulator

KEY = "sk-ant-api03-hostile-strings-real-key-0123456789"
POLICY = textwrap.dedent("""
    version: 1
    models: {small: claude-haiku-4-5}
    budgets:
      - {name: repo-daily, scope: repo, period: day, limit_usd: 40}
    defaults:
      model: small
      limits: {max_turns: 20, max_cost_usd: 1.00, max_runtime: 2m}
    rules:
      - name: allow
        decision: allow
""")
HOSTILE = [sys.executable, "-m", "tests.meter.hostile"]


def hostile_calls() -> str:
    msg = '"messages":[{"role":"user","content":"hi"}],"max_tokens":20'
    return json.dumps([
        # a lone surrogate as the model: rewritten to the policy's model, but recorded as asked
        ["/anthropic/v1/messages", '{"model":"\\udfff",' + msg + "}", {}],
        # non-UTF-8 bytes in the session id header (decoded with surrogateescape by the server)
        ["/anthropic/v1/messages", '{"model":"claude-haiku-4-5",' + msg + "}",
         {"X-Claude-Code-Session-Id": "sess-\xff\xfe"}],
        # a lone surrogate as the service tier and a NUL in the model (PostgreSQL text cannot hold NUL)
        ["/anthropic/v1/messages", '{"model":"claude-haiku-4-5\\u0000","service_tier":"\\ud800",' + msg + "}", {}],
    ])


def test_lone_surrogates_and_non_utf8_headers_still_land_every_call_in_the_ledger(tmp_path: Path, any_ledger,
                                                                                  monkeypatch):
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path))  # the spill directory: $RUNNER_TEMP/ci-guard/spill
    (tmp_path / "policy.yml").write_text(POLICY)
    out = tmp_path / "agent.jsonl"
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "HOSTILE_OUT": str(out),
           "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # a branch name of non-UTF-8 bytes, as argv delivers it (surrogateescape)
    ctx = RunContext(platform="local", repo="acme/web", org="acme", pr=3, actor="mallory",
                     head_branch=os.fsdecode(b"feat\xff"), title="t\udc80")
    with run_simulator("tool-loop", api_key=KEY) as sim:
        outcome = run_agent(RunRequest(
            policy_path=str(tmp_path / "policy.yml"), context=ctx, command=[*HOSTILE, hostile_calls()],
            ledger_url=any_ledger, preset="none", summary_path=str(tmp_path / "summary.json"), quiet=True,
            upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=KEY,
                                openai_api_key=KEY),
            environ=env, cwd=os.getcwd(), grace_s=0.5, kill_after_s=2))
        served = [r for r in sim.served if r["usage"]]
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert [a["status"] for a in answers] == [200, 200, 200]
    summary = outcome.summary
    assert outcome.exit_code == 0 and summary.status == "completed"
    assert len(served) == 3 and summary.cost_usd > 0
    store = open_ledger(any_ledger)
    try:
        run = store.get_run(summary.run_id)
        calls = store.list_calls(summary.run_id)
        budgets = store.budget_status(_budgets(), RunContext(repo="acme/web"), datetime.now(UTC))
    finally:
        store.close()
    assert run.status == "completed" and run.branch == "feat\ufffd"
    assert len(calls) == 3 and sum((c.cost_usd for c in calls), Decimal(0)) == summary.cost_usd == run.cost_usd
    assert calls[0].model_requested == "\ufffd" and calls[1].session_id == "sess-\ufffd\ufffd"
    assert calls[2].model_requested == "claude-haiku-4-5\ufffd"
    assert budgets[0].spent_usd == summary.cost_usd  # every served call reached the budget rollup
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert Decimal(on_disk["cost_usd"]) == summary.cost_usd and len(on_disk["calls"]) == 3
    from ci_guard.meter.lifecycle import spill_path

    assert not Path(spill_path(summary.run_id)).exists()  # nothing spilled


def _budgets():
    from ci_guard.policy.models import Budget

    return [Budget(name="repo-daily", scope="repo", period="day", limit_usd=Decimal(40))]


def test_a_failing_finish_still_releases_the_hold_and_the_summary_is_written(tmp_path: Path):
    from ci_guard.meter import lifecycle
    from ci_guard.meter.summary import RunSummary

    done: list[str] = []

    class Recorder:
        enabled, failures = True, 0

        def flush(self) -> None: ...

        def call(self, method, *args, **kwargs):
            done.append(method)
            if method == "finish_run":  # not a LedgerError: a driver's own exception
                raise UnicodeEncodeError("utf-8", "\udfff", 0, 1, "surrogates not allowed")

        def close(self) -> None:
            done.append("close")

        def spill_row(self, row) -> None:
            done.append(f"spill {row['kind']}")

    prepared = lifecycle.PreparedRun("run_x", None, "sqlite:///x.db", recorder=Recorder())  # type: ignore[arg-type]
    summary = RunSummary(run_id="run_x", decision={}, status="completed", started_at="2026-01-01T00:00:00+00:00",
                         ended_at="2026-01-01T00:00:01+00:00")
    lifecycle.finish_run(prepared, summary)
    lifecycle.write_summary(summary, str(tmp_path / "s.json"))
    # settled anyway, and the finish kept for the next start to replay (the run must not stay running)
    assert done == ["finish_run", "settle", "spill finish", "close"] and (tmp_path / "s.json").exists()


def test_a_start_that_fails_after_the_reservation_releases_it(tmp_path: Path, any_ledger, monkeypatch):
    from ci_guard.meter import lifecycle
    from ci_guard.meter.live_log import LiveLog

    (tmp_path / "policy.yml").write_text(POLICY)

    def broken_record(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(lifecycle, "_run_record", broken_record)
    ctx = RunContext(platform="local", repo="acme/web", org="acme")
    with pytest.raises(UnicodeEncodeError):
        lifecycle.prepare_run(policy_path=str(tmp_path / "policy.yml"), context=ctx, ledger_url=any_ledger,
                              budget_snapshot=None, now=None, live=LiveLog(quiet=True))
    store = open_ledger(any_ledger)
    try:
        status = store.budget_status(_budgets(), ctx, datetime.now(UTC))
    finally:
        store.close()
    assert status[0].reserved_usd == 0  # no orphaned reservation waiting for its TTL


def test_non_utf8_command_line_values_are_storable_in_the_decision(tmp_path: Path):
    import subprocess
    import sys

    (tmp_path / "policy.yml").write_text(POLICY)
    ci_guard = str(Path(sys.executable).parent / "ci-guard")
    proc = subprocess.run([ci_guard, "check", "--policy", "policy.yml", "--repo", "acme/web", "--format", "json",
                           "--head-branch", os.fsdecode(b"feat\xff")], cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["context"]["head_branch"] == "feat\ufffd"
