"""`ci-guard report` figures against values computed here by hand from the same generated rows.

The pilot generator is deterministic: the test writes a pilot month into the ledger (SQLite and
PostgreSQL) and, independently of ci_guard.report.finops, recomputes every figure from the very
runs and calls it wrote.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest

from ci_guard.demo.pilot import pilot_batches
from tests.helpers import run_cli
from tests.ledger.conftest import ledger_url, pg_schema  # noqa: F401  (fixtures)

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
CALLS = 4_000


def _write(url: str, start: datetime, days: int, seed: int) -> tuple[list, list, dict]:
    from ci_guard.ledger import open_ledger

    store = open_ledger(url)
    runs, calls, outcomes = [], [], {}
    try:
        for r, c, o in pilot_batches(start, days=days, calls=CALLS, seed=seed, batch_calls=1_500):
            store.load_history(r, c, o)
            runs += r
            calls += c
            outcomes.update({(repo, pr): out for repo, pr, out in o})
    finally:
        store.close()
    return runs, calls, outcomes


@pytest.fixture
def pilot(ledger_url):  # noqa: F811
    march = _write(ledger_url, MARCH, 31, seed=7)
    feb = _write(ledger_url, FEB, 28, seed=8)
    return ledger_url, march, feb


def rank(values, q):
    values = sorted(values)
    return values[max(0, math.ceil(q * len(values)) - 1)]


def micro(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def test_report_by_team_matches_hand_computed_figures(pilot, capsys):
    url, (runs, calls, outcomes), (feb_runs, _, _) = pilot
    code, out, err = run_cli(capsys, "report", "--ledger", url, "--month", "2026-03", "--by", "team",
                             "--format", "json")
    assert code == 0, err
    got = {row["team"]: row for row in json.loads(out)["rows"]}

    calls_of = defaultdict(list)
    for c in calls:
        calls_of[c.run_id].append(c)
    teams = {r.team for r in runs}
    assert set(got) == teams and len(teams) >= 4
    all_stopped: set[str] = set()
    for team in teams:
        mine = [r for r in runs if r.team == team]
        metered = [r for r in mine if calls_of[r.run_id]]
        row = got[team]
        cost = sum((c.cost_usd for r in mine for c in calls_of[r.run_id]), Decimal(0))
        assert Decimal(row["cost_usd"]) == cost
        assert row["runs"] == len(mine)
        assert row["calls"] == sum(len(calls_of[r.run_id]) for r in mine)
        fresh = sum(c.usage.input_tokens for r in mine for c in calls_of[r.run_id])
        write = sum(c.usage.cache_write_tokens for r in mine for c in calls_of[r.run_id])
        read = sum(c.usage.cache_read_tokens for r in mine for c in calls_of[r.run_id])
        assert row["tokens"]["cache_read_tokens"] == read
        assert Decimal(row["cache_hit_share"]) == (Decimal(read) / (fresh + write + read)).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_UP)
        run_costs = [sum((c.cost_usd for c in calls_of[r.run_id]), Decimal(0)) for r in metered]
        assert Decimal(row["cost_per_run_p50_usd"]) == rank(run_costs, 0.5)
        assert Decimal(row["cost_per_run_p90_usd"]) == rank(run_costs, 0.9)
        stopped = defaultdict(int)
        for r in mine:
            if r.status == "stopped":
                stopped[r.stop_reason] += 1
        assert row["stopped"] == dict(stopped)
        all_stopped.update(stopped)
        storms = [r for r in mine if r.stop_reason == "retry_storm"]
        assert row["retry_storms"] == len(storms)
        assert Decimal(row["retry_storm_cost_usd"]) == sum(
            (c.cost_usd for r in storms for c in calls_of[r.run_id]), Decimal(0))
        dev_days = {(r.user, r.started_at.date()) for r in mine}
        assert row["active_developer_days"] == len(dev_days)
        assert row["cost_per_active_developer_day_usd"] == micro(cost / len(dev_days))
        merged = {(r.repo, r.pr) for r in mine if r.pr and outcomes.get((r.repo, r.pr)) == "merged"}
        assert row["merged_prs"] == len(merged) > 0
        assert row["cost_per_merged_pr_usd"] == micro(cost / len(merged))
        fixed = sum(r.tests_fixed or 0 for r in mine)
        assert row["tests_fixed"] == fixed
        abandoned = [r for r in mine if r.status == "failed" or (r.pr and outcomes.get((r.repo, r.pr)) == "closed")]
        assert row["abandoned_runs"] == len(abandoned)
        ctx = [sorted(calls_of[r.run_id], key=lambda c: c.seq) for r in metered]
        assert row["context_first"] == rank([cs[0].context_tokens for cs in ctx], 0.5)
        assert row["context_median"] == rank([cs[(len(cs) + 1) // 2 - 1].context_tokens for cs in ctx], 0.5)
        assert row["context_last"] == rank([cs[-1].context_tokens for cs in ctx], 0.5)
        by_model = defaultdict(Decimal)
        for r in mine:
            for c in calls_of[r.run_id]:
                by_model[c.model_served] += c.cost_usd
        assert {m: Decimal(v) for m, v in row["model_mix"].items()} == {
            m: (v / cost).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) for m, v in by_model.items()}
        before = sum((r.cost_usd for r in feb_runs if r.team == team), Decimal(0))
        assert Decimal(row["previous_cost_usd"]) == before
        assert Decimal(row["change"]) == ((cost - before) / before).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    assert all_stopped == {"max_turns", "max_cost", "max_context", "retry_storm"}  # every cap is in the month


def test_report_two_dimensions_csv_and_totals(pilot, capsys):
    url, (runs, calls, _), _ = pilot
    code, out, err = run_cli(capsys, "ledger", "report", "--ledger", url, "--month", "2026-03",
                             "--by", "team,workflow", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = defaultdict(Decimal)
    for r in runs:
        expected[(r.team, r.workflow)] += r.cost_usd
    assert {(row["team"], row["workflow"]): Decimal(row["cost_usd"]) for row in rows} == dict(expected)
    code, out, _ = run_cli(capsys, "report", "--ledger", url, "--month", "2026-03", "--by", "status")
    assert code == 0 and "TOTAL" in out and "stopped by cap:" in out
    total = sum((c.cost_usd for c in calls), Decimal(0))
    assert f"${total:,.2f}" in out


def test_report_period_in_policy_timezone(pilot, capsys, tmp_path):
    url, (runs, _, _), (feb_runs, _, _) = pilot
    policy = tmp_path / "policy.yml"
    policy.write_text("version: 1\ntimezone: Pacific/Auckland\nrules:\n  - name: all\n    decision: allow\n")
    code, out, err = run_cli(capsys, "report", "--ledger", url, "--month", "2026-03", "--policy", str(policy),
                             "--by", "org", "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    start, end = datetime.fromisoformat(body["from"]), datetime.fromisoformat(body["to"])
    # March in Auckland (UTC+13 until April 5) starts on Feb 28 at 11:00 UTC
    assert start == datetime(2026, 2, 28, 11, tzinfo=UTC) and body["timezone"] == "Pacific/Auckland"
    inside = [r for r in runs + feb_runs if start <= r.started_at < end]
    assert any(r in inside for r in feb_runs)  # the generator puts runs on Feb 28 evenings
    assert body["total"]["runs"] == len(inside)
    assert Decimal(body["total"]["cost_usd"]) == sum((r.cost_usd for r in inside), Decimal(0))


@pytest.mark.parametrize("argv, message", [
    (["--by", "password"], "cannot group by password"),
    (["--month", "2026-13"], "expected YYYY-MM"),
    (["--month", "2026-03", "--since", "7d"], "choose one of"),
    (["--timezone", "Mars/Olympus"], "unknown timezone"),
])
def test_report_bad_input_exits_2(argv, message, capsys, tmp_path):
    code, _, err = run_cli(capsys, "report", "--ledger", f"sqlite:///{tmp_path}/l.db", *argv)
    assert code == 2 and message in err


def test_pr_outcome_is_inherited_by_its_runs_and_a_run_outcome_wins(ledger_url, capsys, monkeypatch):  # noqa: F811
    from ci_guard.ledger import open_ledger
    from tests.ledger.factories import call, run

    store = open_ledger(ledger_url)
    try:
        for i, pr in enumerate((42, 42, 42, 43), start=1):
            store.start_run(run(f"r{i}", started_at=MARCH.replace(day=3), pr=pr, workflow="test-repair"))
            store.record_call(call(f"r{i}", 1, "2", at=MARCH.replace(day=3)))
    finally:
        store.close()
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/api")
    assert run_cli(capsys, "outcome", "--ledger", ledger_url, "--pr", "42", "merged")[0] == 0
    assert run_cli(capsys, "ledger", "outcome", "--ledger", ledger_url, "r3", "closed")[0] == 0
    assert run_cli(capsys, "outcome", "--ledger", ledger_url, "r1", "--tests-fixed", "4")[0] == 0
    code, out, _ = run_cli(capsys, "report", "--ledger", ledger_url, "--month", "2026-03", "--by", "repo",
                           "--format", "json")
    row = json.loads(out)["rows"][0]
    # r1, r2 merged through PR 42; r3 closed by its own outcome; r4 (PR 43) has none
    assert (row["merged_prs"], row["abandoned_runs"], row["tests_fixed"]) == (1, 1, 4)
    assert (row["cost_per_merged_pr_usd"], row["cost_per_fixed_test_usd"]) == ("8.000000", "2.000000")
    assert (row["abandoned_cost_usd"]) == "2"
    code, _, err = run_cli(capsys, "outcome", "--ledger", ledger_url, "--pr", "42", "<b>merged</b>")
    assert code == 2 and "short word" in err
    monkeypatch.delenv("GITHUB_REPOSITORY")
    monkeypatch.delenv("CI_PROJECT_PATH", raising=False)
    code, _, err = run_cli(capsys, "outcome", "--ledger", ledger_url, "--pr", "42", "merged")
    assert code == 2 and "--repo" in err


def test_demo_pilot_then_report_as_a_user_runs_them(tmp_path):
    import subprocess

    url = f"sqlite:///{tmp_path}/pilot.db"
    done = subprocess.run(["ci-guard", "demo", "--pilot", "--ledger", url, "--calls", "3000", "--month", "2026-03"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "calls" in done.stdout and "ci-guard report" in done.stdout
    shown = subprocess.run(["ci-guard", "report", "--ledger", url, "--month", "2026-03", "--by", "team,workflow"],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "platform" in shown.stdout and "ai-review" in shown.stdout and "TOTAL" in shown.stdout


def test_a_run_that_used_several_models_is_split_per_model(ledger_url, capsys):  # noqa: F811
    from ci_guard.ledger import open_ledger
    from tests.ledger.factories import call, run

    store = open_ledger(ledger_url)
    try:
        store.start_run(run("routed", started_at=MARCH.replace(day=4)))
        store.record_calls([call("routed", 1, "3", at=MARCH.replace(day=4), model_served="claude-opus-4-1"),
                            call("routed", 2, "0.5", at=MARCH.replace(day=4), model_served="claude-haiku-4-5"),
                            call("routed", 3, "0.5", at=MARCH.replace(day=4), model_served="claude-haiku-4-5")])
        store.start_run(run("plain", started_at=MARCH.replace(day=4)))
        store.record_call(call("plain", 1, "4", at=MARCH.replace(day=4), model_served="claude-haiku-4-5"))
    finally:
        store.close()
    _, out, _ = run_cli(capsys, "report", "--ledger", ledger_url, "--month", "2026-03", "--by", "org",
                           "--format", "json")
    row = json.loads(out)["rows"][0]
    assert row["calls"] == 4 and row["model_mix"] == {"claude-haiku-4-5": "0.6250", "claude-opus-4-1": "0.3750"}
