"""`ci-guard budget status` and `ci-guard ledger ...` against a real SQLite ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from ci_guard.ledger import open_ledger
from ci_guard.ledger.budgets import budget_keys
from tests.helpers import run_cli
from tests.ledger.factories import CTX, NOW, call, run

POLICY = """version: 1
budgets:
  - {name: org-monthly, scope: org, period: month, limit_usd: 100}
  - {name: repo-daily, scope: repo, period: day, limit_usd: 10, timezone: Europe/Berlin}
rules:
  - name: all
    decision: allow
"""
BUDGETS = [{"name": "org-monthly", "scope": "org", "period": "month", "limit_usd": 100},
           {"name": "repo-daily", "scope": "repo", "period": "day", "limit_usd": 10, "timezone": "Europe/Berlin"}]


@pytest.fixture
def seeded(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = open_ledger(url)
    keys = budget_keys(BUDGETS, CTX, NOW)
    store.reserve("r-1", keys, Decimal("3"), 3600, NOW - timedelta(minutes=5))
    store.start_run(run("r-1", started_at=NOW - timedelta(hours=2)), keys)
    store.record_call(call("r-1", 1, "1.5", at=NOW - timedelta(hours=2)))
    store.record_call(call("r-1", 2, "0.25", at=NOW - timedelta(hours=1), status="error"))
    store.close()
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY)
    return url, str(policy)


def test_budget_status_json(seeded, capsys):
    url, policy = seeded
    code, out, _ = run_cli(capsys, "budget", "status", "--policy", policy, "--ledger", url,
                           "--now", NOW.isoformat(), "--format", "json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["budgets"]}
    daily = rows["repo-daily"]
    assert (daily["scope_key"], daily["spent_usd"], daily["reserved_usd"], daily["remaining_usd"]) == (
        "acme/api", "1.75", "1.25", "7.00")
    # 1.75 spent in the 16h09m26s since Berlin midnight (23:00 UTC the day before)
    assert daily["period_start"] == "2026-03-13T23:00:00+00:00"
    assert Decimal(daily["burn_per_day_usd"]) == (Decimal("1.75") / (Decimal(16 * 3600 + 9 * 60 + 26) / 86400)
                                                  ).quantize(Decimal("0.000001"))
    assert rows["org-monthly"]["spent_usd"] == "1.75"


def test_budget_status_text_lists_unseen_budgets(seeded, capsys, tmp_path):
    _, policy = seeded
    open_ledger(f"sqlite:///{tmp_path}/empty.db").close()  # an empty ledger (a new one) ...
    code, out, _ = run_cli(capsys, "budget", "status", "--policy", policy, "--ledger",
                           f"sqlite:///{tmp_path}/empty.db")
    assert code == 0 and "(none yet)" in out and "$100.00" in out


def test_read_only_commands_never_create_a_ledger(seeded, tmp_path, monkeypatch):
    """With none configured and none on disk they say so and exit 2 (never an empty ledger reporting $0)."""
    import os
    import subprocess
    import sys

    _, policy = seeded
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CI_GUARD_LEDGER"}
    env.update(RUNNER_TEMP=str(tmp_path / "runner"), XDG_STATE_HOME=str(tmp_path / "state"))
    commands = [["budget", "status", "--policy", policy], ["ledger", "runs"], ["ledger", "calls"],
                ["ledger", "report"], ["ledger", "export", "-o", str(tmp_path / "f.csv")],
                ["ledger", "dashboard", "-o", str(tmp_path / "d.html")], ["report"], ["baseline"],
                ["outcome", "run_x", "merged"]]
    for argv in commands:
        proc = subprocess.run([sys.executable, "-m", "ci_guard", *argv], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "no ledger configured" in proc.stderr and "never create" in proc.stderr, argv
        missing = subprocess.run([sys.executable, "-m", "ci_guard", *argv, "--ledger", f"sqlite:///{tmp_path}/no.db"],
                                 cwd=checkout, env=env, capture_output=True, text=True, timeout=60)
        assert missing.returncode == 2 and "does not exist" in missing.stderr, (argv, missing.stderr)
    assert list(checkout.iterdir()) == [] and not (tmp_path / "runner").exists()
    assert not (tmp_path / "no.db").exists() and not (tmp_path / "f.csv").exists()


def test_ledger_runs_calls_outcome(seeded, capsys):
    url, _ = seeded
    assert run_cli(capsys, "ledger", "outcome", "r-1", "merged", "--ledger", url)[0] == 0
    code, out, _ = run_cli(capsys, "ledger", "runs", "--ledger", url, "--repo", "acme/api", "--format", "json")
    runs = json.loads(out)
    assert code == 0 and runs[0]["outcome"] == "merged" and runs[0]["cost_usd"] == "1.750000"
    code, out, _ = run_cli(capsys, "ledger", "calls", "--ledger", url, "--status", "error", "--format", "json")
    assert [(c["seq"], c["cost_usd"]) for c in json.loads(out)] == [(2, "0.250000")]
    code, out, _ = run_cli(capsys, "ledger", "runs", "--ledger", url, "--repo", "acme/nothing")
    assert code == 0 and "r-1" not in out
    code, _, err = run_cli(capsys, "ledger", "outcome", "ghost", "merged", "--ledger", url)
    assert code == 2 and "no run 'ghost'" in err


def test_ledger_report_and_migrate(seeded, capsys):
    url, _ = seeded
    from ci_guard.ledger.migrations import latest_version

    code, out, _ = run_cli(capsys, "ledger", "migrate", "--ledger", url)
    assert code == 0 and f"schema version {latest_version('sqlite')}" in out
    code, out, _ = run_cli(capsys, "ledger", "report", "--ledger", url, "--month", "2026-03", "--format", "json")
    row = json.loads(out)["rows"][0]
    assert (row["repo"], row["runs"], row["turns"], row["cost_usd"]) == ("acme/api", 1, 2, "1.75")
    assert (row["tokens"]["input_tokens"], row["tokens"]["cache_read_tokens"], row["tokens"]["output_tokens"]) == (
        200, 4000, 100)


def test_unreachable_ledger_exit_3_without_password(capsys):
    code, _, err = run_cli(capsys, "ledger", "runs", "--ledger",
                           "postgresql://ci:hunter2-secret@127.0.0.1:1/x?connect_timeout=2")
    assert code == 3 and "hunter2-secret" not in err and "cannot reach" in err


def test_budget_status_shows_crossed_alerts(seeded, capsys):
    url, policy = seeded
    with open(policy, "w") as fh:  # repo-daily has 1.75 of 10 spent: past 10%, not past 50%
        fh.write(POLICY.replace("limit_usd: 10,", 'limit_usd: 10, alert_at: ["10%", "50%"],'))
    code, out, _ = run_cli(capsys, "budget", "status", "--policy", policy, "--ledger", url,
                           "--now", NOW.isoformat(), "--format", "json")
    rows = {r["name"]: r for r in json.loads(out)["budgets"]}
    assert code == 0 and rows["repo-daily"]["alert_crossed_usd"] == "1.000000"
    assert rows["org-monthly"]["alert_crossed_usd"] is None
    code, out, _ = run_cli(capsys, "budget", "status", "--policy", policy, "--ledger", url, "--now", NOW.isoformat())
    assert "past 10%" in out
