"""Alerts against a local webhook receiver: one per threshold under 16 parallel runs, retries on 500,
nothing leaked, never failing the run."""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import textwrap
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.ledger.conftest import ledger_url, pg_schema  # noqa: F401  (fixtures)

SECRET_PATH = "/services/T000/B000/xoxb-hook-secret-7f3a9c"


class Receiver:
    """An incoming-webhook endpoint: records every POST; answers 500 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    outer.attempts += 1
                    failing = outer.attempts <= outer.fail_first
                    if not failing:
                        outer.bodies.append(json.loads(body))
                self.send_response(500 if failing else 200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


POLICY = """version: 1
budgets:
  - {name: repo-daily, scope: repo, period: day, limit_usd: 10, alert_at: ["50%", "80%"]}
alerts:
  webhook_env: TEST_ALERT_HOOK
  slack_webhook_env: TEST_SLACK_HOOK
rules:
  - name: all
    decision: allow
"""


def _policy(tmp_path: Path):
    from ci_guard.policy.loader import load_policy_file

    path = tmp_path / "policy.yml"
    path.write_text(POLICY)
    return load_policy_file(path)


def _one_run(args: tuple[str, str, int, str, str]) -> int:
    """A job: start a run on the shared budget, spend $0.70, settle, send its alerts."""
    url, policy_path, i, hook, slack = args
    import os
    from datetime import UTC, datetime

    os.environ["TEST_ALERT_HOOK"], os.environ["TEST_SLACK_HOOK"] = hook, slack
    from ci_guard.alerts import send_run_alerts
    from ci_guard.context.model import RunContext
    from ci_guard.ledger import open_ledger
    from ci_guard.ledger.budgets import budget_keys
    from ci_guard.policy.loader import load_policy_file
    from tests.ledger.factories import call, run

    policy = load_policy_file(policy_path)
    now = datetime.now(UTC)
    ctx = RunContext(org="acme", repo="acme/api", actor="alice", agent="pr-review")
    store = open_ledger(url)
    try:
        store.start_run(run(f"job-{i}", started_at=now), budget_keys(policy.budgets, ctx, now))
        store.record_call(call(f"job-{i}", 1, "0.70", at=now))
        store.settle(f"job-{i}")
    finally:
        store.close()
    summary = SimpleNamespace(run_id=f"job-{i}", status="completed", stop_reason=None, turns=1,
                              cost_usd=Decimal("0.70"), stop_detail=None)
    return len(send_run_alerts(policy.alerts, url, policy.budgets, ctx, summary))


def test_sixteen_parallel_runs_send_one_alert_per_threshold(ledger_url, tmp_path, receiver):  # noqa: F811
    slack = Receiver()
    try:
        _policy(tmp_path)
        jobs = [(ledger_url, str(tmp_path / "policy.yml"), i, receiver.url, slack.url) for i in range(16)]
        with mp.get_context("spawn").Pool(16) as pool:
            sent = pool.map(_one_run, jobs)
    finally:
        slack.close()
    # 16 x $0.70 = $11.20 of $10: past 50% ($5), 80% ($8) and the limit, each announced exactly once
    assert sum(sent) == 3
    kinds = sorted((b["kind"], b.get("threshold_usd")) for b in receiver.bodies)
    assert kinds == [("budget_exhausted", None), ("budget_threshold", "5.000000"), ("budget_threshold", "8.000000")]
    assert len(slack.bodies) == 3
    assert all(b["text"].startswith(":rotating_light: ci-guard: budget") for b in slack.bodies)
    from ci_guard.ledger import open_ledger

    store = open_ledger(ledger_url)
    try:
        rows = store.alerts_sent()
    finally:
        store.close()
    assert len(rows) == 3 and all(r["delivered_at"] and r["attempts"] == 2 for r in rows)  # two webhooks each


def test_retries_on_500_then_delivers_and_a_dead_hook_never_fails(tmp_path, monkeypatch, capsys):
    from ci_guard.alerts import Alert, Targets
    from ci_guard.alerts.deliver import deliver

    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    flaky = Receiver(fail_first=2)
    try:
        result = deliver(Alert("k", "cap", "r1", "run r1 was stopped by max_turns"), Targets(webhook=flaky.url))
    finally:
        flaky.close()
    assert result.delivered and result.attempts == 3 and flaky.attempts == 3 and len(flaky.bodies) == 1
    dead = deliver(Alert("k2", "cap", "r1", "stopped"), Targets(webhook="http://127.0.0.1:9" + SECRET_PATH))
    assert not dead.delivered and dead.attempts == 4 and SECRET_PATH not in (dead.error or "")
    assert "ci-guard: alert: stopped" in capsys.readouterr().err  # the annotation / log line


def test_nothing_leaks_and_a_cap_alert_names_the_run(tmp_path, receiver, monkeypatch, capsys):
    from ci_guard.alerts import send_run_alerts
    from ci_guard.context.model import RunContext
    from ci_guard.secrets import register

    key = "sk-ant-api03-alert-leak-test-0123456789abcdefgh"
    register(key)
    monkeypatch.setenv("TEST_ALERT_HOOK", receiver.url)
    monkeypatch.setenv("TEST_SLACK_HOOK", "http://127.0.0.1:9" + SECRET_PATH)  # dead: its error is logged
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    policy = _policy(tmp_path)
    url = f"sqlite:///{tmp_path}/l.db"
    summary = SimpleNamespace(run_id="r-cap", status="stopped", stop_reason="max_turns", turns=30,
                              cost_usd=Decimal("4.2"), stop_detail=f"upstream said: bad key {key}")
    log = SimpleNamespace(lines=[], info=lambda text: log.lines.append(text))
    ctx = RunContext(repo="acme/api", pr=42, run_url="https://github.com/acme/api/actions/runs/1")
    first = send_run_alerts(policy.alerts, url, [], ctx, summary, log=log)
    again = send_run_alerts(policy.alerts, url, [], ctx, summary, log=log)  # the same run twice: sent once
    assert [a.kind for a in first] == ["cap"] and again == []
    (body,) = receiver.bodies
    assert body["run_id"] == "r-cap" and body["stop_reason"] == "max_turns" and body["pr"] == 42
    out = capsys.readouterr()
    assert "::warning title=ci-guard alert::run r-cap (acme/api#42) was stopped by max_turns" in out.out
    everything = json.dumps(receiver.bodies) + out.out + out.err + " ".join(log.lines)
    from ci_guard.ledger import open_ledger

    store = open_ledger(url)
    try:
        everything += json.dumps(store.alerts_sent(), default=str)
    finally:
        store.close()
    assert key not in everything and SECRET_PATH not in everything
    assert "not delivered" in " ".join(log.lines)


def test_an_unreachable_ledger_or_bad_config_never_raises(tmp_path):
    from ci_guard.alerts import send_run_alerts

    summary = SimpleNamespace(run_id="r", status="stopped", stop_reason="max_cost", turns=1, cost_usd=Decimal(1),
                              stop_detail=None)
    config = SimpleNamespace(on=["cap"], annotation=False, webhook_env=None, slack_webhook_env=None)
    assert send_run_alerts(config, "postgresql://x@127.0.0.1:1/db?connect_timeout=1", [], None, summary) == []


def test_policy_rejects_a_url_where_an_env_var_name_belongs(tmp_path):
    from ci_guard.errors import InvalidInputError
    from ci_guard.policy.loader import load_policy_file

    path = tmp_path / "p.yml"
    path.write_text(POLICY.replace("webhook_env: TEST_ALERT_HOOK", "webhook_env: https://hooks.slack.com/x"))
    with pytest.raises(InvalidInputError) as info:
        load_policy_file(path)
    assert "alerts.webhook_env" in info.value.render()


def test_a_real_run_stopped_by_a_cap_alerts_once(tmp_path, receiver, monkeypatch):
    from ci_guard.context.model import RunContext
    from ci_guard.meter.runner import EXIT_CAP_STOPPED, RunRequest, run_agent
    from ci_guard.meter.upstreams import Upstreams
    from ci_guard.simulator.server import run_simulator

    key = "sk-ant-api03-alerts-runner-key-0123456789abcdef"
    (tmp_path / "policy.yml").write_text(textwrap.dedent("""
        version: 1
        models: {small: claude-haiku-4-5}
        alerts: {webhook_env: TEST_ALERT_HOOK, on: [cap, retry_storm]}
        defaults: {model: small, limits: {max_turns: 3, max_cost_usd: 1.00}}
        rules:
          - {name: allow, decision: allow}
    """))
    monkeypatch.setenv("TEST_ALERT_HOOK", receiver.url)
    import os

    with run_simulator("endless-loop", api_key=key) as sim:
        outcome = run_agent(RunRequest(
            policy_path=str(tmp_path / "policy.yml"), command=[sys.executable, "-m", "ci_guard.demo.agent"],
            context=RunContext(platform="local", repo="acme/web", pr=9, agent="pr-review"),
            ledger_url=f"sqlite:///{tmp_path}/ledger.db", preset="none",
            upstreams=Upstreams(anthropic=sim.url, openai=sim.openai_url, anthropic_api_key=key, openai_api_key=key),
            summary_path=str(tmp_path / "summary.json"), quiet=True, environ={**os.environ, "ANTHROPIC_API_KEY": key},
            grace_s=0.5, kill_after_s=2))
    assert outcome.exit_code == EXIT_CAP_STOPPED  # the agent's exit code is untouched by the alert
    (body,) = receiver.bodies
    assert (body["kind"], body["stop_reason"], body["run_id"]) == ("cap", "max_turns", outcome.summary.run_id)
