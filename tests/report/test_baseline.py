"""`ci-guard baseline`: suggestions computed here by hand from the same pilot rows, valid as a policy."""

from __future__ import annotations

import math
import subprocess
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal

from ci_guard.demo.pilot import pilot_batches
from tests.helpers import run_cli
from tests.ledger.conftest import ledger_url, pg_schema  # noqa: F401  (fixtures)

MARCH = datetime(2026, 3, 1, tzinfo=UTC)


def rank(values, q):
    values = sorted(values)
    return values[max(0, math.ceil(q * len(values)) - 1)]


def up(value: Decimal) -> Decimal:
    steps = [(1, "0.05"), (10, "0.5"), (100, "5")]
    step = next((Decimal(s) for bound, s in steps if value < bound), Decimal(50))
    return max(step, (value / step).to_integral_value(rounding=ROUND_CEILING) * step)


def test_baseline_matches_hand_computed_p90s_and_loads_as_a_policy(ledger_url, capsys, tmp_path):  # noqa: F811
    import yaml

    from ci_guard.ledger import open_ledger
    from ci_guard.policy.loader import load_policy_file

    store = open_ledger(ledger_url)
    runs, calls = [], []
    try:
        for r, c, o in pilot_batches(MARCH, days=31, calls=5_000, seed=21, batch_calls=2_000):
            store.load_history(r, c, o)
            runs += r
            calls += c
    finally:
        store.close()
    out_file = tmp_path / "suggested.yml"
    code, _, err = run_cli(capsys, "baseline", "--ledger", ledger_url, "--month", "2026-03", "--headroom", "25",
                           "-o", str(out_file))
    assert code == 0, err
    text = out_file.read_text()
    policy = load_policy_file(out_file)  # the same loader as any policy
    doc = yaml.safe_load(text)
    metered = {c.run_id for c in calls}
    by_agent = defaultdict(list)
    for r in runs:
        if r.run_id in metered and r.enforced:
            by_agent[r.agent].append(r)
    rules = {rule["when"]["agent"]: rule["limits"] for rule in doc["rules"]}
    assert set(rules) == set(by_agent) and len(policy.rules) == len(by_agent)
    for agent, mine in by_agent.items():
        p90 = rank([r.cost_usd for r in mine], 0.9)
        t90 = rank([r.turns for r in mine], 0.9)
        assert Decimal(str(rules[agent]["max_cost_usd"])) == up(p90 * Decimal("1.25"))
        assert rules[agent]["max_turns"] == math.ceil(t90 * 1.25)
        assert f"p90 {p90:.2f} USD; turns p90 {t90}" in text  # the figures it came from
        storms = any(r.stop_reason == "retry_storm" for r in mine)
        assert ("max_identical_retries" in rules[agent]) == storms
    budgets = {b["name"]: b for b in doc["budgets"]}
    team_month = defaultdict(Decimal)
    for r in runs:
        team_month[r.team] += r.cost_usd
    busiest = max(team_month.values())
    assert Decimal(str(budgets["team-monthly"]["limit_usd"])) == up(busiest * 30 / 31 * Decimal("1.25"))
    repo_days = defaultdict(lambda: defaultdict(Decimal))
    for r in runs:
        if r.repo:
            repo_days[r.repo][r.started_at.date()] += r.cost_usd
    p90_day = max(rank(list(days.values()) + [Decimal(0)] * (31 - len(days)), 0.9) for days in repo_days.values())
    assert Decimal(str(budgets["repo-daily"]["limit_usd"])) == up(p90_day * Decimal("1.25"))
    done = subprocess.run(["ci-guard", "validate", str(out_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hostile_agent_names_stay_data(tmp_path, capsys):
    from ci_guard.ledger import open_ledger
    from tests.ledger.factories import call, run

    url = f"sqlite:///{tmp_path}/l.db"
    store = open_ledger(url)
    hostile = 'x"}\n  - name: evil\n    decision: allow  # \u202e'
    try:
        store.start_run(run("r1", started_at=MARCH.replace(day=2), agent=hostile))
        store.record_call(call("r1", 1, "1.5", at=MARCH.replace(day=2)))
    finally:
        store.close()
    code, out, err = run_cli(capsys, "baseline", "--ledger", url, "--month", "2026-03")
    assert code == 0, err
    import yaml

    doc = yaml.safe_load(out)
    assert [r["name"] for r in doc["rules"]] == ["baseline-x---name-evil-decision-allow"]
    assert doc["rules"][0]["when"]["agent"] == hostile  # quoted: the name is a value, not YAML


def test_empty_pilot_still_valid(tmp_path, capsys):
    from ci_guard.ledger import open_ledger

    open_ledger(f"sqlite:///{tmp_path}/l.db").close()  # a new, empty ledger (a missing one is exit 2)
    code, out, err = run_cli(capsys, "baseline", "--ledger", f"sqlite:///{tmp_path}/l.db", "--since", "30d")
    assert code == 0, err
    assert "nothing to base limits on" in out and "budgets: []" in out
